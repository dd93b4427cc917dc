"""Request signing: HMAC-SHA256 over "<timestamp>.<body>", Stripe-style.

Binding the timestamp into the MAC lets a receiver reject replays (stale timestamps) and the
Idempotency-Key (= alert id) lets it drop a duplicate it already processed.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Sightline-Timestamp"
SIGNATURE_HEADER = "X-Sightline-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SCHEME = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def sign_headers(secret: str, body: bytes, alert_id: str, now: float | None = None) -> dict[str, str]:
    ts = int(time.time() if now is None else now)
    return {
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: signature(secret, ts, body),
        IDEMPOTENCY_HEADER: alert_id,
    }


def verify(
    secret: str,
    body: bytes,
    timestamp: str | None,
    sig: str | None,
    *,
    tolerance_s: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver runs: constant-time MAC check plus a freshness window against replays."""
    if not timestamp or not sig:
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, ts, body), sig.strip())
