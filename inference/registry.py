"""Filesystem model registry with promotion history, so workers can hot-swap and operators roll back.

Layout::

    <root>/<name>/<version>/model.onnx
    <root>/<name>/<version>/manifest.json   (sha256 verified on load)
    <root>/<name>/state.json                {"promoted", "history", "generation"}

Versions are immutable once published (published by renaming a fully written temp dir); ``state.json`` is
replaced atomically under a per-model ``flock``, so concurrent CLIs and pollers never see partial files.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inference.hashing import sha256_file
from inference.manifest import ModelManifest, infer_manifest

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"
STATE_FILE = "state.json"


class RegistryError(RuntimeError):
    """Unknown model/version, nothing to roll back to, or a conflicting add."""


class IntegrityError(RegistryError):
    """A stored model's bytes no longer match the sha256 in its manifest."""


def _check_name(value: str, what: str) -> str:
    if not _SAFE.match(value):
        raise ValueError(f"invalid {what} {value!r}: use letters, digits, '.', '_' or '-'")
    return value


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temp file in the same directory + fsync + ``os.replace``.

    ``mode`` is set explicitly because ``mkstemp`` creates 0600 files that workers running as another
    user could not read.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class ModelRegistry:
    """Add, list, promote, roll back and load model versions under ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    # -- paths / locking -----------------------------------------------------------------------------
    def _model_dir(self, name: str) -> Path:
        return self.root / _check_name(name, "model name")

    def _version_dir(self, name: str, version: str) -> Path:
        return self._model_dir(name) / _check_name(version, "version")

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        d = self._model_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        with open(d / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- state ---------------------------------------------------------------------------------------
    def _read_state(self, name: str) -> dict[str, Any]:
        path = self._model_dir(name) / STATE_FILE
        if not path.exists():
            return {"promoted": None, "history": [], "generation": 0}
        return json.loads(path.read_text())

    def _write_state(self, name: str, state: dict[str, Any]) -> None:
        state = state | {"generation": int(state.get("generation", 0)) + 1, "updated_at": time.time()}
        write_atomic(self._model_dir(name) / STATE_FILE, json.dumps(state, indent=2).encode())

    # -- queries -------------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _SAFE.match(p.name))

    def versions(self, name: str) -> list[str]:
        """Published versions, numeric ones in numeric order first."""
        d = self._model_dir(name)
        if not d.is_dir():
            return []
        found = [p.name for p in d.iterdir() if (p / MANIFEST_FILE).is_file() and _SAFE.match(p.name)]
        return sorted(found, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))

    def manifest(self, name: str, version: str) -> ModelManifest:
        path = self._version_dir(name, version) / MANIFEST_FILE
        if not path.is_file():
            raise RegistryError(f"no version {version!r} of model {name!r}")
        return ModelManifest.model_validate_json(path.read_text())

    def list(self, name: str | None = None) -> list[ModelManifest]:
        """Manifests of every version (of one model, or of all)."""
        return [self.manifest(n, v) for n in ([name] if name else self.names()) for v in self.versions(n)]

    def load(self, name: str, version: str, verify: bool = True) -> tuple[ModelManifest, Path]:
        """Manifest and model path of one version; ``verify`` re-hashes the file against the manifest."""
        manifest = self.manifest(name, version)
        path = self._version_dir(name, version) / MODEL_FILE
        if verify and sha256_file(path) != manifest.sha256:
            raise IntegrityError(f"{path} does not match sha256 {manifest.sha256} in its manifest")
        return manifest, path

    def promoted(self, name: str, verify: bool = True) -> tuple[ModelManifest, Path]:
        """The version workers should serve now."""
        version = self._read_state(name)["promoted"]
        if version is None:
            raise RegistryError(f"model {name!r} has no promoted version")
        return self.load(name, version, verify)

    def state_token(self, name: str) -> str | None:
        """Cheap change marker for pollers: ``"<generation>:<version>"``, or None before any promotion.

        A worker polls this every few seconds and reloads via ``promoted`` when it changes.
        """
        state = self._read_state(name)
        return None if state["promoted"] is None else f"{state['generation']}:{state['promoted']}"

    # -- mutations -----------------------------------------------------------------------------------
    def add(self, path: str | Path, name: str, version: str | None = None, **overrides: Any) -> ModelManifest:
        """Copy ``path`` in as a new version with an inferred manifest (``overrides`` win).

        Without ``version`` the next integer is used; re-adding identical bytes returns the existing
        manifest instead of a duplicate version.
        """
        sha = sha256_file(path)
        with self._lock(name):
            for existing in self.versions(name):
                m = self.manifest(name, existing)
                if m.sha256 == sha and version in (None, existing):
                    return m
            if version is None:
                numeric = [int(v) for v in self.versions(name) if v.isdigit()]
                version = str(max(numeric, default=0) + 1)
            target = self._version_dir(name, version)
            if target.exists():
                raise RegistryError(f"{name} version {version} already exists with different bytes")
            overrides.setdefault("source", str(path))
            manifest = infer_manifest(path, name, version, **overrides)
            staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=self._model_dir(name)))
            try:
                shutil.copyfile(path, staging / MODEL_FILE)
                if sha256_file(staging / MODEL_FILE) != manifest.sha256:
                    raise IntegrityError(f"{path} changed while being added")
                write_atomic(staging / MANIFEST_FILE, manifest.to_json().encode(), mode=0o444)
                os.chmod(staging / MODEL_FILE, 0o444)  # published versions are immutable
                os.chmod(staging, 0o755)  # mkdtemp makes it 0700
                os.rename(staging, target)  # publish the whole version at once
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return manifest

    def promote(self, name: str, version: str) -> None:
        """Make ``version`` the served one and push it on the history stack."""
        with self._lock(name):
            self.manifest(name, version)  # raises if unknown
            state = self._read_state(name)
            if state["promoted"] == version:
                return
            state["history"] = [*state["history"], version]
            state["promoted"] = version
            self._write_state(name, state)

    def rollback(self, name: str) -> str:
        """Return to the previously promoted version; returns it."""
        with self._lock(name):
            state = self._read_state(name)
            history = list(state["history"])
            if len(history) < 2:
                raise RegistryError(f"model {name!r} has no earlier promotion to roll back to")
            history.pop()
            state["history"], state["promoted"] = history, history[-1]
            self._write_state(name, state)
            return history[-1]
