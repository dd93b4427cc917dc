"""Where Sightline keeps caches: one folder, overridable, shared by all commands."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$SIGHTLINE_CACHE, else $XDG_CACHE_HOME/sightline, else ~/.cache/sightline."""
    if env := os.environ.get("SIGHTLINE_CACHE"):
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
    return base / "sightline"


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def shared_dir() -> Path | None:
    """The optional read-only reference folder beside the checkout, used only to seed caches."""
    path = Path(os.environ.get("SIGHTLINE_SHARED", repo_root().parent / "shared"))
    return path if path.is_dir() else None
