"""The live view's login page: one password field, posted as a form (no token ever in a URL)."""

from __future__ import annotations

import html

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from sightline.api.auth import require_read
from sightline.api.errors import ApiError

# Pages that hold a session must not be framed (clickjacking) nor leak their URL onwards.
PAGE_HEADERS = {
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def session_page(request: Request, page: str) -> Response:
    """A page for readers; a browser without a session (or header) goes to the login page, not a 401."""
    try:
        require_read(request)
    except ApiError as exc:
        if exc.status in (401, 403):
            return RedirectResponse("/login", status_code=303)
        raise
    return HTMLResponse(page, headers=PAGE_HEADERS)


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sightline login</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body {{ font-family: system-ui, sans-serif; background: #111; color: #eee; display: flex;
         justify-content: center; padding-top: 15vh; }}
  form {{ background: #1c1c1c; padding: 24px; border-radius: 6px; display: grid; gap: 12px;
         min-width: 320px; }}
  input, button {{ font-size: 15px; padding: 6px 8px; }}
  .error {{ color: #e66; }}
</style>
</head>
<body>
<form method="post" action="/login">
  <h1 style="font-size:18px;margin:0">Sightline live view</h1>
  <label>API token
    <input type="password" name="token" autocomplete="current-password" required autofocus></label>
  {error}
  <button type="submit">Log in</button>
</form>
</body>
</html>
"""


def login_html(error: str | None = None) -> str:
    message = f'<p class="error" id="error">{html.escape(error)}</p>' if error else ""
    return _PAGE.format(error=message)
