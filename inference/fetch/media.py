"""Sample images used to verify fetched models, obtained like the models: seed copy or registry."""

from __future__ import annotations

import shutil
from pathlib import Path

from inference.fetch.pins import SEED_SHA256, ULTRALYTICS_PYPI
from inference.fetch.sources import extract_member, pip_download
from inference.hashing import sha256_file


def fetch_bus_jpg(cache: Path, seed_dir: Path | None = None) -> Path:
    """``bus.jpg``: cached, else a sha-matching seed copy, else from the Ultralytics wheel's assets."""
    out = cache / "media" / "bus.jpg"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    seed = seed_dir / "bus.jpg" if seed_dir else None
    if seed and seed.is_file() and sha256_file(seed) == SEED_SHA256["bus.jpg"]:
        shutil.copyfile(seed, out)
        return out
    wheel = pip_download(ULTRALYTICS_PYPI, cache / "downloads")
    return extract_member(wheel, "ultralytics/assets/bus.jpg", out.parent)
