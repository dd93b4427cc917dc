"""Signed, expiring URLs of an alert's evidence (snapshot and clip), served by the API.

A URL carries `expires` (Unix seconds) and `sig`, an HMAC-SHA256 over the URL's path and that
expiry, so whoever holds the URL (a webhook receiver) can fetch the evidence without an API
token, only that evidence, and only until it expires. Secrets rotate as webhook secrets do: list
the new one first and the old one after it; the first signs, every listed one verifies, so URLs
handed out before the rotation keep working until they expire.

It lives in `streams` so that the API (sightline) and the webhook dispatcher (alerts, which may
only import schemas and streams) build the same URLs from the same settings.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import Literal, Self
from urllib.parse import quote

from pydantic import Field, SecretStr, model_validator

from streams.settings import Section

Part = Literal["snapshot", "clip"]
FILES: dict[Part, str] = {"snapshot": "snapshot.jpg", "clip": "clip.mp4"}
MIN_SECRET_CHARS = 16


class EvidenceUrlSettings(Section):
    """How evidence URLs are built and checked (`evidence.urls` in the configuration file)."""

    # Where receivers reach the API, e.g. https://sightline.example.com; None: the API uses the
    # address a request came in on (the webhook dispatcher needs it set).
    public_url: str | None = Field(None, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    secret: SecretStr | list[SecretStr] | None = Field(
        None, description="Signing secret, or a list during a rotation (the first signs); or secret_env."
    )
    secret_env: str | None = Field(
        None, description="Environment variable holding the secret(s), space-separated during a rotation."
    )
    ttl_s: int = Field(7 * 86400, ge=60, description="How long a signed URL stays valid.")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.secret is not None and self.secret_env is not None:
            raise ValueError("give `secret` or `secret_env`, not both")
        if self.secret is not None:
            _checked(self._inline())
        return self

    def _inline(self) -> list[str]:
        secrets = self.secret if isinstance(self.secret, list) else [self.secret] if self.secret else []
        return [s.get_secret_value() for s in secrets]

    def secrets(self) -> list[str]:
        """Every active secret, the signing one first; empty when signing is not configured.

        Read from the environment at each use, so a rotation needs no new configuration file.
        """
        if self.secret_env is None:
            return self._inline()
        return _checked(os.environ.get(self.secret_env, "").split())


def _checked(secrets: list[str]) -> list[str]:
    for i, secret in enumerate(secrets):
        if len(secret) < MIN_SECRET_CHARS:  # the message never contains the secret
            raise ValueError(f"evidence URL secret #{i + 1} is shorter than {MIN_SECRET_CHARS} characters")
    return secrets


def evidence_path(alert_id: str, part: Part) -> str:
    """The API path of one part of an alert's evidence."""
    return f"/v1/alerts/{quote(alert_id, safe='')}/{FILES[part]}"


def signature(secret: str, path: str, expires: int) -> str:
    message = f"sightline-evidence\n{path}\n{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(path: str, secrets: list[str], ttl_s: int, now: float | None = None) -> str:
    """`path?expires=...&sig=...`, signed with the first secret."""
    expires = int((time.time() if now is None else now) + ttl_s)
    return f"{path}?expires={expires}&sig={signature(secrets[0], path, expires)}"


def evidence_urls(
    settings: EvidenceUrlSettings, alert_id: str, base_url: str | None = None, now: float | None = None
) -> dict[Part, str] | None:
    """Absolute signed URLs of an alert's snapshot and clip, or None when no secret is configured.

    The webhook dispatcher should call this for each alert it sends and put the result in the
    body as `evidence.snapshot_url` and `evidence.clip_url` (with `settings.public_url` set: it
    has no request to take the API's address from). The alert is never held back for them:
    until the evidence is stored, the URLs answer 503 with Retry-After.
    """
    secrets = settings.secrets()
    base = (settings.public_url or base_url or "").rstrip("/")
    if not secrets or not base:
        return None
    return {part: base + sign(evidence_path(alert_id, part), secrets, settings.ttl_s, now) for part in FILES}


def verify(path: str, expires: str, sig: str, secrets: list[str], now: float | None = None) -> str | None:
    """None when `sig` signs `path` until `expires` with one of `secrets` and has not expired;
    otherwise why not (for the 403's detail). Compared in constant time."""
    if not secrets:
        return "signed URLs are not configured (evidence.urls.secret)"
    if not expires.isascii() or not expires.isdigit():
        return "malformed expiry"
    if int(expires) < (time.time() if now is None else now):
        return "the URL has expired"
    given = sig.encode("ascii", "replace")
    if any(hmac.compare_digest(given, signature(s, path, int(expires)).encode()) for s in secrets):
        return None
    return "the signature does not match this URL"
