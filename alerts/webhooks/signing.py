"""Request signing per the Standard Webhooks specification (https://www.standardwebhooks.com/).

The spec's own library (`standardwebhooks`) computes every signature, so a receiver in any
language verifies our requests with that spec's off-the-shelf library: `webhook-signature` is
`v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`. The alert id is the
`webhook-id`, which makes it the receiver's idempotency key; the signed timestamp lets it reject
replays. During a secret rotation every active secret signs, space-separated in one header, so
receivers holding the old or the new secret both verify.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from standardwebhooks import Webhook, WebhookVerificationError

from alerts.settings import WHSEC, secret_key

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
# Not part of the spec; kept so receivers written against the old headers still dedupe.
IDEMPOTENCY_HEADER = "Idempotency-Key"


def as_spec_secret(secret: str) -> str:
    """The `whsec_` form of any accepted secret: what to give a receiver using a spec library."""
    return WHSEC + base64.b64encode(secret_key(secret)).decode()


def new_secret() -> str:
    """A fresh 32-byte secret in the spec's `whsec_` form."""
    return WHSEC + base64.b64encode(os.urandom(32)).decode()


def webhooks(secrets: Iterable[str]) -> list[Webhook]:
    keys = [Webhook(secret_key(s)) for s in secrets]
    if not keys:
        raise ValueError("at least one webhook secret is needed")
    return keys


class Signer:
    """Signs with every active secret; one instance per endpoint (keys decoded once)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._keys = webhooks(secrets)

    def __repr__(self) -> str:
        return f"Signer({len(self._keys)} secret(s))"

    def headers(self, msg_id: str, body: str, now: float | None = None) -> dict[str, str]:
        """The spec's three headers (plus Idempotency-Key) for one attempt, signed now."""
        ts = int(time.time() if now is None else now)
        when = datetime.fromtimestamp(ts, tz=UTC)
        signatures = " ".join(k.sign(msg_id, when, body) for k in self._keys)
        return {
            ID_HEADER: msg_id,
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: signatures,
            IDEMPOTENCY_HEADER: msg_id,
        }


def verify(keys: Sequence[Webhook], body: bytes, headers: Mapping[str, str]) -> bool:
    """What a receiver runs: the library's check (MAC, 5 min freshness) against any of its keys."""
    plain = {k.lower(): v for k, v in headers.items()}
    for key in keys:
        try:
            key.verify(body, plain, json_parse=False)
        # The library raises ValueError (not its own error) on a malformed signature header.
        except (WebhookVerificationError, ValueError, UnicodeDecodeError):
            continue
        return True
    return False
