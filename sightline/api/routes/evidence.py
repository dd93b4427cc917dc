"""An alert with its evidence: the record, and the snapshot and clip behind signed URLs.

`GET /v1/alerts/{id}` (read token) returns the alert, its evidence record and signed URLs of
its snapshot and clip. Those URLs need no token: the signature (streams/evidence_urls.py) is the
credential, bound to the path and an expiry; a bad, expired or other path's signature is a 403.
Without a signature the read token (or the live view's session) is needed as for any read.
Until a part is stored it answers 503 with Retry-After, never 404: the alert is sent before its
evidence exists. A part that will never exist (its frames expired) answers 410 with the reason.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from sightline.api.auth import require_read
from sightline.api.errors import ApiError
from sightline.evidence.record import EvidenceRecord, load_record
from sightline.evidence.store import EvidenceStore
from streams.evidence_urls import Part, evidence_urls, verify

router = APIRouter(prefix="/v1", tags=["alerts"])

ALERT_ID = re.compile(r"^[0-9a-f]{32}$")
FILES: dict[str, tuple[Part, str]] = {
    "snapshot.jpg": ("snapshot", "image/jpeg"),
    "clip.mp4": ("clip", "video/mp4"),
}
RETRY_AFTER_S = 5
RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _record(request: Request, alert_id: str) -> EvidenceRecord | None:
    if not ALERT_ID.match(alert_id):
        raise ApiError(404, "unknown_alert", "alert ids are 32 hex digits")
    store: EvidenceStore = request.app.state.evidence_store
    return load_record(store, alert_id)


def known_alert(request: Request, alert_id: str) -> dict[str, Any]:
    """The alert from its evidence record, else from the API's recent alerts; else 404."""
    record = _record(request, alert_id)
    alert = record.alert if record is not None else None
    if alert is None:
        state, api = request.app.state.tail_state, request.app.state.config.api
        recent = state.recent_alerts(limit=api.recent_alerts)
        alert = next((a for _seq, a in recent if a["alert_id"] == alert_id), None)
    if alert is None:
        raise ApiError(404, "unknown_alert", f"no alert {alert_id} is known (yet)")
    return alert


@router.get("/alerts/{alert_id}", dependencies=[Depends(require_read)])
def alert_with_evidence(alert_id: str, request: Request) -> dict[str, Any]:
    """The alert, its evidence status (what is stored, pending or missing, and why), signed URLs
    and the latest review verdict (null until someone gives one)."""
    alert = known_alert(request, alert_id)
    record = _record(request, alert_id)
    settings = request.app.state.config.evidence.urls
    verdict = request.app.state.verdicts.get(alert_id)
    return {
        "alert": alert,
        "evidence": record.public() if record is not None else {"status": "pending"},
        "urls": evidence_urls(settings, alert_id, str(request.base_url)),
        "verdict": verdict.model_dump() if verdict is not None else None,
    }


def _ranged(data: bytes, media_type: str, header: str | None) -> Response:
    """The object, or the one byte range a browser's <video> asks for (seeking)."""
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    match = RANGE.match(header or "")
    if match is None or match.groups() == ("", ""):
        return Response(data, media_type=media_type, headers=headers)
    first, last = match.groups()
    size = len(data)
    start = int(first) if first else max(0, size - int(last))
    end = min(size - 1, int(last)) if first and last else size - 1
    if start >= size or start > end:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return Response(data[start : end + 1], status_code=206, media_type=media_type, headers=headers)


@router.get(
    "/alerts/{alert_id}/{name}",
    responses={200: {"content": {"image/jpeg": {}, "video/mp4": {}}}, 503: {}, 410: {}, 403: {}},
)
def evidence_part(
    alert_id: str, name: str, request: Request, expires: str | None = None, sig: str | None = None
) -> Response:
    """`snapshot.jpg` or `clip.mp4`: with a valid `expires` and `sig`, or the read token."""
    if name not in FILES:
        raise ApiError(404, "not_found", "evidence parts are snapshot.jpg and clip.mp4")
    part, media_type = FILES[name]
    if expires is None and sig is None:
        require_read(request)
    else:
        secrets = request.app.state.config.evidence.urls.secrets()
        why = verify(request.url.path, expires or "", sig or "", secrets)
        if why is not None:
            raise ApiError(403, "forbidden", why)
    record = _record(request, alert_id)
    state = record.parts[part] if record is not None else None
    if state is None or state.status == "pending":
        return JSONResponse(
            {"error": "evidence_pending", "detail": f"the {part} of alert {alert_id} is not ready yet"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    data = request.app.state.evidence_store.get(state.key) if state.key else None
    if data is None:
        reasons = "; ".join(g.reason for g in state.missing) or "deleted by the retention sweep"
        raise ApiError(410, "evidence_missing", f"the {part} of alert {alert_id} does not exist: {reasons}")
    return _ranged(data, media_type, request.headers.get("range"))
