"""Throw-away virtual environments for conversion tools, created on demand inside the cache.

TensorFlow and Ultralytics/torch pin numpy, protobuf and onnx versions that must never leak into the
service's own environment, so each tool gets a venv of its own, reused while its requirements match.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
_MARKER = ".sightline-toolenv.json"


@dataclass(frozen=True)
class ToolEnv:
    """A venv at ``path`` holding exactly ``requirements`` (plus their dependencies)."""

    path: Path
    requirements: tuple[str, ...]
    pip_args: tuple[str, ...] = ()

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def _ready(self) -> bool:
        marker = self.path / _MARKER
        if not (marker.is_file() and self.python.exists()):
            return False
        return json.loads(marker.read_text()).get("requirements") == list(self.requirements)

    def ensure(self) -> ToolEnv:
        """Create (or recreate, if its pins changed) the venv; a no-op when already in place."""
        if self._ready():
            return self
        shutil.rmtree(self.path, ignore_errors=True)
        log.info("creating tool venv %s with %s", self.path, " ".join(self.requirements))
        subprocess.run([sys.executable, "-m", "venv", str(self.path)], check=True)
        pip = [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        subprocess.run([*pip, *self.pip_args, *self.requirements], check=True)
        (self.path / _MARKER).write_text(json.dumps({"requirements": list(self.requirements)}))
        return self

    def run(self, args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        """Run ``python args...`` in the venv, raising with its output tail on failure."""
        proc = subprocess.run(
            [str(self.python), *args], cwd=cwd, env=os.environ | (env or {}), capture_output=True, text=True
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr)[-4000:]
            raise RuntimeError(f"{self.path.name}: {' '.join(args[:2])} failed ({proc.returncode}):\n{tail}")
        log.debug("%s", proc.stdout[-2000:])
