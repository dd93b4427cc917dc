"""Camera URLs without their credentials, for everything that leaves the decoder.

Camera URLs routinely carry secrets (`rtsp://admin:pw@cam/...`, `?token=...`, signed-URL `sig=`).
They go into camera-events records, `/v1/cameras`, logs and error messages, so every such place
shows `redact_url(url)` instead: the user info becomes `***` and secret-looking query values
become `***`; everything else is kept byte for byte so operators can still tell cameras apart.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

MASK = "***"

# Query parameter names (split into words) that carry credentials: a whole word or a suffix.
SECRET_WORDS = frozenset(
    {"password", "passwd", "pass", "pwd", "token", "key", "sig", "signature", "auth", "authorization",
     "secret", "credential", "credentials", "session", "sid", "user", "username", "login", "apikey"}
)  # fmt: skip
SECRET_SUFFIXES = ("token", "key", "secret", "password", "passwd", "sig", "signature", "auth")
# camelCase and separators (`apiKey`, `X-Amz-Signature`, `access_token`) -> words; a name, not a URL.
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter name looks like it carries a credential."""
    words = [w.lower() for w in _WORD.findall(unquote_plus(name))]
    return any(w in SECRET_WORDS or w.endswith(SECRET_SUFFIXES) for w in words)


def _redact_query(query: str) -> str:
    # Split by hand rather than parse_qsl + urlencode: re-encoding would change the other values.
    parts = []
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        parts.append(f"{name}={MASK}" if sep and value and is_secret_param(name) else part)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """`url` with user info and secret query values replaced by `***`; plain paths unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket: show nothing rather than leak
        scheme = url.split(":", 1)[0] if "://" in url else ""
        return f"{scheme}://{MASK}" if scheme else MASK
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and userinfo:
        netloc = f"{MASK}@{hostport}"
    query = _redact_query(parts.query) if parts.query else parts.query
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secrets(url: str) -> list[str]:
    """The literal credential strings in `url` (raw and percent-decoded), longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found: set[str] = set()
    userinfo, at, _host = parts.netloc.rpartition("@")
    if at and userinfo:
        found.add(userinfo)
        _user, colon, password = userinfo.partition(":")
        if colon and password:
            found.add(password)
    for part in parts.query.split("&"):
        name, sep, value = part.partition("=")
        if sep and value and is_secret_param(name):
            found.add(value)
    found |= {unquote(s) for s in found}
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


def redact_text(text: str, url: str) -> str:
    """`text` (an error message, a log line) with `url` and its credentials masked wherever they occur.

    FFmpeg and PyAV put the URL they were given into their error messages, sometimes decoded, so
    besides the whole URL each credential found in it is masked on its own as well.
    """
    out = text.replace(url, redact_url(url))
    for secret in _secrets(url):
        out = out.replace(secret, MASK)
    return out
