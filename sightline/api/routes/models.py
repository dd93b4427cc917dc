"""Model registry over HTTP: list versions, promote one, roll back (workers hot-swap on poll)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from inference.registry import ModelRegistry, RegistryError
from sightline.api.auth import require_admin, require_read
from sightline.api.errors import ApiError

router = APIRouter(prefix="/v1/models", tags=["models"])


class PromoteBody(BaseModel):
    version: str


def _registry(request: Request) -> ModelRegistry:
    return ModelRegistry(request.app.state.config.inference.registry_dir)


def _promoted(registry: ModelRegistry, name: str) -> str | None:
    token = registry.state_token(name)
    return token.split(":", 1)[1] if token else None


@router.get("", dependencies=[Depends(require_read)])
async def list_models(request: Request) -> dict[str, Any]:
    registry = _registry(request)
    models = []
    for name in registry.names():
        promoted = _promoted(registry, name)
        versions = [
            {
                "version": m.version,
                "promoted": m.version == promoted,
                "format": m.format,
                "sha256": m.sha256,
                "input_size": list(m.input_size),
                "labels": len(m.labels),
                "source": m.source,
            }
            for m in registry.list(name)
        ]
        models.append({"name": name, "promoted": promoted, "versions": versions})
    return {"models": models, "poll_s": request.app.state.config.inference.model_poll_s}


def _check_model(registry: ModelRegistry, name: str) -> None:
    try:
        known = name in registry.names()
    except ValueError as exc:
        raise ApiError(400, "invalid_name", str(exc)) from None
    if not known:
        raise ApiError(404, "unknown_model", f"no model {name!r} in the registry")


@router.post("/{name}/promote", dependencies=[Depends(require_admin)])
async def promote(name: str, body: PromoteBody, request: Request) -> dict[str, Any]:
    """Serve `version` from now on; workers and this API switch within `inference.model_poll_s`."""
    registry = _registry(request)
    _check_model(registry, name)
    try:
        registry.promote(name, body.version)
    except ValueError as exc:
        raise ApiError(400, "invalid_version", str(exc)) from None
    except RegistryError as exc:
        raise ApiError(404, "unknown_version", str(exc)) from None
    return {"name": name, "promoted": _promoted(registry, name)}


@router.post("/{name}/rollback", dependencies=[Depends(require_admin)])
async def rollback(name: str, request: Request) -> dict[str, Any]:
    """Return to the previously promoted version."""
    registry = _registry(request)
    _check_model(registry, name)
    try:
        version = registry.rollback(name)
    except RegistryError as exc:
        raise ApiError(409, "nothing_to_roll_back", str(exc)) from None
    return {"name": name, "promoted": version}
