"""Who may call what: the read token (or admin) for reads, the admin token for anything that mutates,
a review token (or admin) for verdicts on alerts.

Tokens come in the `Authorization: Bearer` header, never in a URL (URLs end up in proxy logs,
browser history and Referer headers). Browsers, whose `<img>` and `EventSource` cannot send that
header, log in once (`POST /login`) and get a session cookie (HttpOnly, SameSite=Strict). A
cookie rides along on any same-site request, so beyond reads it authorises only two things, each
only from a same-origin JSON request (the Origin header must be this server's, which a form on
another site, even on the same host, cannot fake): a reviewer's verdict (`require_reviewer`) and
an admin session's edit of the alert rules from the rules editor (`require_rules_admin`). Every
other admin mutation takes the admin token in the header.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Literal

from fastapi import Request
from pydantic import SecretStr

from sightline.api.errors import ApiError
from sightline.api.parsing import ascii_int
from sightline.config import ApiSettings

Role = Literal["read", "review", "admin"]
SESSION_COOKIE = "sightline_session"


def _settings(request: Request) -> ApiSettings:
    return request.app.state.config.api


def _same(given: str, secret: SecretStr | None) -> bool:
    return secret is not None and hmac.compare_digest(given.encode(), secret.get_secret_value().encode())


def principal_of(api: ApiSettings, given: str) -> tuple[Role, str] | None:
    """The role a presented token grants and who holds it ("admin", "read", or a reviewer's name)."""
    if _same(given, api.admin_token):
        return "admin", "admin"
    if _same(given, api.read_token):
        return "read", "read"
    for name, secret in api.review_tokens.items():
        if _same(given, secret):
            return "review", name
    return None


def role_of(api: ApiSettings, given: str) -> Role | None:
    """The role a presented token grants, compared in constant time."""
    found = principal_of(api, given)
    return found[0] if found is not None else None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header[:7].lower() != "bearer ":
        return None
    return header[7:].strip() or None


# -- session cookies ---------------------------------------------------------------------------------
# Hand-written (stdlib hmac) rather than a session library: the value is "<role>.<expiry>.<mac>"
# keyed by that role's token, so the cookie never contains a token and rotating a token ends
# every session made with it; nothing is stored server-side. A reviewer's role field is
# "review:<name>" (names have no dots), keyed by that reviewer's token.


def _mac(secret: SecretStr, payload: str) -> str:
    key = secret.get_secret_value().encode()
    return hmac.new(key, b"sightline-session:" + payload.encode(), hashlib.sha256).hexdigest()


def _key(api: ApiSettings, role: str) -> SecretStr | None:
    if role.startswith("review:"):
        return api.review_tokens.get(role.removeprefix("review:"))
    return api.admin_token if role == "admin" else api.read_token if role == "read" else None


def make_session(api: ApiSettings, role: Role, now: float | None = None, who: str | None = None) -> str:
    """`who` names the reviewer of a "review" session."""
    field = f"review:{who}" if role == "review" else role
    key = _key(api, field)
    assert key is not None, "a session is only made for a token that matched"
    payload = f"{field}.{int((now or time.time()) + api.session_ttl_s)}"
    return f"{payload}.{_mac(key, payload)}"


def session_principal(api: ApiSettings, value: str, now: float | None = None) -> tuple[Role, str] | None:
    """The role and holder of a valid, unexpired session cookie, else None.

    The MAC is compared as bytes: ``hmac.compare_digest`` raises on a ``str`` with non-ASCII
    characters, and a cookie is whatever the client sends.
    """
    role, _, rest = value.partition(".")
    expires, _, mac = rest.partition(".")
    key = _key(api, role)
    expiry = ascii_int(expires)
    if key is None or expiry is None or expiry < (now or time.time()):
        return None
    if not hmac.compare_digest(mac.encode(), _mac(key, f"{role}.{expires}").encode()):
        return None
    if role.startswith("review:"):
        return "review", role.removeprefix("review:")
    return ("admin", "admin") if role == "admin" else ("read", "read")


def session_role(api: ApiSettings, value: str, now: float | None = None) -> Role | None:
    """The role of a valid, unexpired session cookie, else None."""
    found = session_principal(api, value, now)
    return found[0] if found is not None else None


# -- dependencies ------------------------------------------------------------------------------------
def _not_configured(what: str) -> ApiError:
    return ApiError(503, "auth_not_configured", f"no {what} is configured; this endpoint is disabled")


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, {"WWW-Authenticate": "Bearer"})


def require_admin(request: Request) -> None:
    """Dependency for mutating endpoints: the admin token in the Authorization header."""
    api = _settings(request)
    if api.admin_token is None:
        raise _not_configured("api.admin_token")
    given = _bearer(request)
    if given is None:
        raise _unauthorized("missing bearer token (the admin token)")
    role = role_of(api, given)
    if role in ("read", "review"):
        raise ApiError(403, "forbidden", f"the {role} token cannot change this; use the admin token")
    if role != "admin":
        raise ApiError(403, "forbidden", "invalid token")


def require_read(request: Request) -> None:
    """Dependency for read-only endpoints: open, or the read/admin token (header or session cookie)."""
    api = _settings(request)
    if api.reads_open:
        return
    if api.read_token is None and api.admin_token is None and not api.review_tokens:
        raise _not_configured("api.read_token or api.admin_token")
    given = _bearer(request)
    if given is not None:
        if role_of(api, given) is None:
            raise ApiError(403, "forbidden", "invalid token")
        return
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and session_role(api, cookie) is not None:
        return
    raise _unauthorized("missing bearer token or session (log in at /login)")


def _same_origin(request: Request) -> bool:
    """The request came from a page of this server: its Origin is this scheme, host and port."""
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    return origin is not None and host is not None and origin == f"{request.url.scheme}://{host}"


def _session_json(request: Request, what: str) -> None:
    """A session cookie authorises a change only from this server's pages, as JSON."""
    if not _same_origin(request):
        raise ApiError(403, "forbidden", f"{what} from a session must come from this server's pages")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ApiError(415, "unsupported_media_type", f"send {what} as application/json")


def require_rules_admin(request: Request) -> str | None:
    """Dependency for saving and rolling back rules: the admin token in the header, or an admin
    session on a same-origin JSON request (the rules editor page). Returns the default author:
    None for a token (the route's own default), "admin (live view)" for a session.
    """
    api = _settings(request)
    if _bearer(request) is not None or request.cookies.get(SESSION_COOKIE) is None:
        require_admin(request)
        return None
    if api.admin_token is None:
        raise _not_configured("api.admin_token")
    found = session_principal(api, request.cookies[SESSION_COOKIE])
    if found is None:
        raise _unauthorized("log in at /login with the admin token")
    if found[0] != "admin":
        raise ApiError(403, "forbidden", f"a {found[0]} session cannot change the rules; log in as admin")
    _session_json(request, "a rules change")
    return "admin (live view)"


def require_reviewer(request: Request) -> str:
    """Dependency for verdicts: who gives it (an admin or a reviewer), from the header or session.

    A session cookie counts only on a same-origin JSON request, so another site (another port of
    the same host included, which SameSite does not tell apart) cannot post a verdict with it.
    """
    api = _settings(request)
    if api.admin_token is None and not api.review_tokens:
        raise _not_configured("api.admin_token or api.review_tokens")
    given = _bearer(request)
    if given is not None:
        found = principal_of(api, given)
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        found = session_principal(api, cookie) if cookie else None
        if found is None:
            raise _unauthorized("log in at /login with an admin or review token")
        _session_json(request, "a verdict")
    if found is None:
        raise ApiError(403, "forbidden", "invalid token")
    role, who = found
    if role not in ("admin", "review"):
        raise ApiError(403, "forbidden", "the read token cannot give verdicts; use a review token")
    return who
