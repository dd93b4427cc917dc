"""Alert rules over HTTP: versions (history, show, diff, save, rollback), validation and
"what would this have raised?" on a camera's recent detections. docs/rules.md describes them.

Reads and tries take the read token (or a session); saving and rolling back take the admin
token, or an admin session from the rules editor page (`auth.require_rules_admin`).
Coordinates are the frame's pixels (the detections' `width` x `height`), whatever size a
browser shows the frame at. Handlers are plain functions: they block on Kafka, so FastAPI runs
them on its thread pool.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from alerts.rules_store import VersionConflict
from alerts.settings import RulesSettings
from alerts.try_rules import DEFAULT_MINUTES, MAX_MINUTES, try_rules
from alerts.versions import (
    Catalog,
    RulesInvalid,
    changed_rules,
    document_of,
    document_of_camera,
    unified_diff,
    validate_camera,
    validate_document,
    with_camera,
)
from schemas.rules_version import RulesVersionRecord
from sightline.api.auth import require_read, require_rules_admin
from sightline.api.errors import ApiError
from sightline.api.rules_state import RulesState
from sightline.evidence.record import load_record
from streams.evidence_urls import evidence_urls
from streams.topic_reader import TopicReadError

router = APIRouter(tags=["rules"])
AUTHOR = "api"


class SaveBody(BaseModel):
    rules: dict[str, Any] = Field(description="The whole rules document (`version`, `cameras`).")
    comment: str = Field("", max_length=2000)
    author: str | None = Field(None, max_length=200, description="Who saves it (default: api).")
    base_version: int | None = Field(
        None, description="The version the edit started from: 409 if another was saved since."
    )


class CameraSaveBody(BaseModel):
    rules: dict[str, Any] = Field(description="This camera's rules block (`camera`, lanes, ...).")
    comment: str = Field("", max_length=2000)
    author: str | None = Field(None, max_length=200)
    base_version: int | None = None


class RollbackBody(BaseModel):
    to: int | None = Field(None, ge=0, description="Default: the version before the one in force.")
    comment: str = Field("", max_length=2000)
    author: str | None = Field(None, max_length=200)


class DraftBody(BaseModel):
    rules: dict[str, Any]


class TryBody(BaseModel):
    rules: dict[str, Any] = Field(
        description="Draft: a whole document, or (camera routes) one camera's block."
    )
    camera: str | None = Field(None, description="Camera whose detections to use (whole-document route).")
    minutes: float = Field(DEFAULT_MINUTES, gt=0, le=MAX_MINUTES)
    flush: bool = Field(True, description="Close open windows and sessions at the end of the records.")


def _state(request: Request) -> RulesState:
    return request.app.state.rules_state


def _meta(record: RulesVersionRecord, latest: int) -> dict[str, Any]:
    return {
        "version": record.version,
        "author": record.author,
        "created_ns": record.created_ns,
        "created": dt.datetime.fromtimestamp(record.created_ns / 1e9, dt.UTC).isoformat(),
        "comment": record.comment,
        "copied_from": record.copied_from,
        "in_force": record.version == latest,
    }


def _rules(state: RulesState, catalog: Catalog, version: int) -> RulesSettings:
    try:
        return catalog.rules(version, state.fallback)
    except KeyError as exc:
        raise ApiError(404, "unknown_version", str(exc.args[0])) from None


def _invalid(exc: RulesInvalid) -> ApiError:
    return ApiError(422, "invalid_rules", str(exc))


def _validated(document: dict[str, Any]) -> RulesSettings:
    try:
        return validate_document(document)
    except RulesInvalid as exc:
        raise _invalid(exc) from None


def _check_base(catalog: Catalog, base: int | None) -> None:
    if base is not None and base != catalog.latest:
        raise ApiError(409, "version_conflict", f"version {catalog.latest} was saved since version {base}")


def _save(
    state: RulesState, rules: RulesSettings, author: str | None, comment: str, **kw: Any
) -> dict[str, Any]:
    try:
        record = state.store.save(rules, author or AUTHOR, comment, **kw)
    except VersionConflict as exc:
        raise ApiError(409, "version_conflict", str(exc)) from None
    state.saved(record)
    return {**_meta(record, record.version), "rules": record.rules}


# -- versions ---------------------------------------------------------------------------------------
@router.get("/v1/rules", dependencies=[Depends(require_read)])
def list_versions(request: Request) -> dict[str, Any]:
    """Every saved version (oldest first) and the one in force; 0 means the rules file."""
    catalog = _state(request).catalog()
    return {"in_force": catalog.latest, "versions": [_meta(r, catalog.latest) for r in catalog.history()]}


@router.get("/v1/rules/versions/{version}", dependencies=[Depends(require_read)])
def show_version(version: int, request: Request) -> dict[str, Any]:
    """A version's whole document (0: the rules file)."""
    state = _state(request)
    catalog = state.catalog()
    rules = document_of(_rules(state, catalog, version))
    meta = (
        _meta(catalog.get(version), catalog.latest)
        if version
        else {"version": 0, "in_force": catalog.latest == 0}
    )
    return {**meta, "rules": rules}


@router.get("/v1/rules/diff", dependencies=[Depends(require_read)])
def diff_versions(request: Request, old: int | None = None, new: int | None = None) -> dict[str, Any]:
    """Unified diff of two versions (default: the one before the version in force, and it), and
    per camera which rules keep their state across the switch and which start fresh."""
    state = _state(request)
    catalog = state.catalog()
    new = catalog.latest if new is None else new
    old = max((v for v in catalog.versions if v < new), default=0) if old is None else old
    a, b = _rules(state, catalog, old), _rules(state, catalog, new)
    return {
        "old": old,
        "new": new,
        "diff": unified_diff(document_of(a), document_of(b), f"version {old}", f"version {new}"),
        "changes": changed_rules(a, b),
    }


@router.post("/v1/rules", status_code=201)
def save_version(
    body: SaveBody, request: Request, who: str | None = Depends(require_rules_admin)
) -> dict[str, Any]:
    """Save a whole document as the next version; the processors switch to it without a restart."""
    state = _state(request)
    rules = _validated(body.rules)
    _check_base(state.catalog(), body.base_version)
    return _save(state, rules, body.author or who, body.comment)


@router.post("/v1/rules/rollback", status_code=201)
def rollback(
    body: RollbackBody, request: Request, who: str | None = Depends(require_rules_admin)
) -> dict[str, Any]:
    """Put an older version back in force (saved again as the next version)."""
    state = _state(request)
    catalog = state.catalog()
    if catalog.latest == 0:
        raise ApiError(409, "nothing_to_roll_back", "no version is saved; the rules file is in force")
    target = catalog.previous() if body.to is None else body.to
    if target == catalog.latest:
        raise ApiError(409, "nothing_to_roll_back", f"version {target} is already in force")
    rules = _rules(state, catalog, target)
    comment = body.comment or f"rollback to version {target}"
    return _save(state, rules, body.author or who, comment, copied_from=target)


@router.post("/v1/rules/validate", dependencies=[Depends(require_read)])
def validate(body: DraftBody) -> dict[str, Any]:
    """Validate a whole document: `errors` has one entry per field (`loc`, `path`, `message`)."""
    try:
        validate_document(body.rules)
    except RulesInvalid as exc:
        return {"valid": False, "errors": [e.as_dict() for e in exc.errors]}
    return {"valid": True, "errors": []}


@router.post("/v1/rules/try", dependencies=[Depends(require_read)])
def try_document(body: TryBody, request: Request) -> dict[str, Any]:
    """What the draft document would have raised on a camera's last `minutes` of detections,
    beside what the rules in force raise on the same records."""
    if body.camera is None:
        raise ApiError(422, "camera_required", "name the camera whose detections to use")
    return _try(request, body.camera, _validated(body.rules), body)


# -- one camera (the editor's unit) -----------------------------------------------------------------
def _frame(request: Request, camera_id: str) -> dict[str, int] | None:
    record, _ = request.app.state.tail_state.latest(camera_id)
    return None if record is None else {"width": record.width, "height": record.height}


@router.get("/v1/cameras/{camera_id}/rules", tags=["cameras"], dependencies=[Depends(require_read)])
def camera_rules(camera_id: str, request: Request) -> dict[str, Any]:
    """The camera's rules in force, in the frame's pixels, with the frame's size when known."""
    state = _state(request)
    catalog = state.catalog()
    rules = _rules(state, catalog, catalog.latest)
    block = next((c for c in rules.cameras if c.camera == camera_id), None)
    return {
        "camera_id": camera_id,
        "version": catalog.latest,
        "rules": document_of_camera(block) if block is not None else None,
        "frame": _frame(request, camera_id),
        "coordinates": "frame pixels, origin top left",
    }


def _camera_draft(camera_id: str, block: dict[str, Any], current: RulesSettings) -> RulesSettings:
    """The document in force with this camera's block replaced; errors located in the block."""
    if block.get("camera", camera_id) != camera_id:
        raise ApiError(422, "camera_mismatch", f"the block is for camera {block.get('camera')!r}")
    try:
        return with_camera(current, validate_camera({**block, "camera": camera_id}))
    except RulesInvalid as exc:
        raise _invalid(exc) from None


@router.post("/v1/cameras/{camera_id}/rules/validate", tags=["cameras"], dependencies=[Depends(require_read)])
def validate_camera_rules(camera_id: str, body: DraftBody, request: Request) -> dict[str, Any]:
    """Validate a camera's block: per-field errors (paths inside the block), then the whole
    document with it (e.g. a POS register already mapped by another camera)."""
    state = _state(request)
    catalog = state.catalog()
    try:
        block = validate_camera({**body.rules, "camera": camera_id})
        with_camera(_rules(state, catalog, catalog.latest), block)
    except RulesInvalid as exc:
        return {"valid": False, "errors": [e.as_dict() for e in exc.errors]}
    return {"valid": True, "errors": []}


@router.put("/v1/cameras/{camera_id}/rules", tags=["cameras"])
def save_camera_rules(
    camera_id: str, body: CameraSaveBody, request: Request, who: str | None = Depends(require_rules_admin)
) -> dict[str, Any]:
    """Save the camera's rules: the next version is the one in force with this block replaced."""
    state = _state(request)
    catalog = state.catalog()
    _check_base(catalog, body.base_version)
    rules = _camera_draft(camera_id, body.rules, _rules(state, catalog, catalog.latest))
    return _save(state, rules, body.author or who, body.comment or f"edit {camera_id}")


@router.post("/v1/cameras/{camera_id}/rules/try", tags=["cameras"], dependencies=[Depends(require_read)])
def try_camera_rules(camera_id: str, body: TryBody, request: Request) -> dict[str, Any]:
    """ "What would this have raised?" for a draft of this camera's block."""
    state = _state(request)
    catalog = state.catalog()
    draft = _camera_draft(camera_id, body.rules, _rules(state, catalog, catalog.latest))
    return _try(request, camera_id, draft, body)


def _try(request: Request, camera_id: str, draft: RulesSettings, body: TryBody) -> dict[str, Any]:
    state = _state(request)
    catalog = state.catalog()
    version, live = catalog.latest, _rules(state, catalog, catalog.latest)
    config = request.app.state.config
    try:
        result = try_rules(
            config.kafka,
            config.topics.detections.name,
            camera_id,
            draft,
            live,
            version,
            body.minutes,
            body.flush,
        )
    except (TimeoutError, TopicReadError) as exc:
        raise ApiError(503, "kafka_unavailable", str(exc), {"Retry-After": "5"}) from None
    out = result.as_dict()
    for side in ("draft", "live"):
        for alert in out[side]["alerts"]:
            alert["evidence_urls"] = _evidence(request, alert["alert_id"])
    return out


def _evidence(request: Request, alert_id: str) -> dict[str, str] | None:
    """Signed snapshot and clip URLs when the evidence stage stored some for this alert id (a
    draft alert has one when the live rules raised the same alert)."""
    record = load_record(request.app.state.evidence_store, alert_id)
    if record is None or record.parts["snapshot"].status != "stored":
        return None
    settings = request.app.state.config.evidence.urls
    return evidence_urls(settings, alert_id, str(request.base_url))
