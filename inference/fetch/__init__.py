"""Obtain models by the project's own recipes (or a checksum-matching seed copy) and register them.

sightline models fetch nanodet-m   (see sightline/commands/models.py)
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from inference.fetch.pins import SEED_SHA256
from inference.fetch.recipes import RECIPES, Recipe
from inference.fetch.verify import count_classes, require
from inference.hashing import sha256_file
from inference.manifest import ModelManifest
from inference.registry import ModelRegistry
from streams.paths import cache_dir

log = logging.getLogger(__name__)

__all__ = ["RECIPES", "FetchResult", "default_cache_dir", "fetch_model"]


@dataclass(frozen=True)
class FetchResult:
    """Where the model ended up, how it was obtained, and what the check found on bus.jpg."""

    name: str
    path: Path
    sha256: str
    origin: Literal["cache", "seed", "built"]
    found: Counter[str]
    manifest: ModelManifest | None = None


def default_cache_dir() -> Path:
    return cache_dir()


def _seed(recipe: Recipe, seed_dir: Path | None) -> Path | None:
    """A seed file is only trusted if it is byte-identical to the pinned reference."""
    if seed_dir is None:
        return None
    path = seed_dir / recipe.filename
    pinned = SEED_SHA256.get(recipe.filename)
    if path.is_file() and pinned and sha256_file(path) == pinned:
        return path
    if path.is_file():
        log.warning("ignoring seed %s: sha256 does not match the pinned value", path)
    return None


def fetch_model(
    name: str,
    cache_dir: Path | None = None,
    *,
    registry: ModelRegistry | None = None,
    seed_dir: Path | None = None,
    force_build: bool = False,
    check_image: Path | None = None,
    promote: bool = True,
) -> FetchResult:
    """Cached file, else seed copy, else build by recipe; optionally register+promote.

    With `check_image` (the command layer passes the pinned sample bus.jpg), the model must find
    its recipe's expected classes there before it enters the cache or the registry.
    """
    recipe = RECIPES[name]
    cache = (cache_dir or default_cache_dir()).resolve()
    target = cache / "models" / recipe.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    origin: Literal["cache", "seed", "built"] = "cache"
    if force_build or not target.is_file():
        seed = None if force_build else _seed(recipe, seed_dir)
        with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=cache) as tmp:
            staged = Path(tmp) / recipe.filename
            if seed is not None:
                shutil.copyfile(seed, staged)
                origin = "seed"
            else:
                log.info("building %s by recipe", name)
                recipe.build(cache, Path(tmp), staged)
                origin = "built"
            found = _verify(recipe, staged, check_image)
            os.replace(staged, target)  # only verified files ever appear in the cache
    else:
        found = _verify(recipe, target, check_image)

    manifest = None
    if registry is not None:
        manifest = registry.add(target, name, source=f"recipe:{name} ({origin})", **recipe.overrides)
        if promote:
            registry.promote(name, manifest.version)
    return FetchResult(name, target, sha256_file(target), origin, found, manifest)


def _verify(recipe: Recipe, path: Path, image: Path | None) -> Counter[str]:
    if image is None or not recipe.expect:
        return Counter()
    found = count_classes(path, image, **recipe.overrides)
    require(found, recipe.expect, f"{recipe.name} on {image.name}")
    return found
