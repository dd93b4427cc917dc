"""CLI: ``python -m inference.fetch NAME [--registry DIR] [--seed-dir DIR] [--force-build]``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from inference.fetch import RECIPES, default_cache_dir, fetch_model
from inference.registry import ModelRegistry


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m inference.fetch", description=__doc__)
    parser.add_argument("name", choices=sorted(RECIPES))
    parser.add_argument("--cache", type=Path, default=default_cache_dir())
    parser.add_argument("--registry", type=Path, help="model registry root to add (and promote) it to")
    parser.add_argument("--seed-dir", type=Path, help="e.g. ../shared/models; used only if sha256 matches")
    parser.add_argument("--force-build", action="store_true", help="ignore cache and seed, run the recipe")
    parser.add_argument("--no-promote", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = fetch_model(
        args.name,
        args.cache,
        registry=ModelRegistry(args.registry) if args.registry else None,
        seed_dir=args.seed_dir,
        force_build=args.force_build,
        promote=not args.no_promote,
    )
    version = result.manifest.version if result.manifest else "-"
    print(
        f"{result.name}: {result.origin} {result.path} sha256={result.sha256} version={version} "
        f"found={dict(result.found)}"
    )


if __name__ == "__main__":
    main()
