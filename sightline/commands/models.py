"""`sightline models`: the model registry (add, list, promote, rollback, fetch)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from sightline.commands.common import config, fail

app = typer.Typer(help="Model registry: versions, promotion and rollback.", no_args_is_help=True)


def _registry():  # noqa: ANN202 - imported lazily so `sightline --help` stays fast
    from inference.registry import ModelRegistry

    return ModelRegistry(config().inference.registry_dir)


def missing_model_hint(name: str, registry_dir: Path) -> str:
    """The command that serves `name` (the model asked for, not the default one): promote a
    registered version, fetch it by its recipe, or add an ONNX file under that name."""
    from inference.fetch import RECIPES
    from inference.registry import ModelRegistry

    try:
        versions = ModelRegistry(registry_dir).versions(name)
    except ValueError:  # not a valid model name: nothing registered under it
        versions = []
    if versions:
        return f"`sightline models promote {name} {versions[-1]}` serves its newest registered version"
    if name in RECIPES:
        return f"`sightline models fetch {name}` builds and registers it"
    return (
        f"`sightline models add MODEL.onnx --name {name} --promote` registers it "
        f"(or fetch one by recipe: {', '.join(sorted(RECIPES))})"
    )


@app.command("add")
def add(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="ONNX file."),
    name: str = typer.Option(..., help="Model name, e.g. yolo11n."),
    version: str | None = typer.Option(None, help="Default: next integer."),
    promote: bool = typer.Option(False, help="Promote the new version right away."),
) -> None:
    """Add an ONNX model as a new version; format and preprocessing are inferred from the graph."""
    from inference.registry import RegistryError

    registry = _registry()
    try:
        manifest = registry.add(path, name, version)
        if promote:
            registry.promote(name, manifest.version)
    except (RegistryError, ValueError) as exc:
        fail(str(exc))
    typer.echo(
        f"{name} {manifest.version}: format={manifest.format} input={manifest.input_size} "
        f"sha256={manifest.sha256}"
    )


@app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every registered version, with the promoted one marked."""
    registry = _registry()
    rows = []
    for name in registry.names():
        try:
            promoted = registry.promoted(name, verify=False)[0].version
        except Exception:  # noqa: BLE001 - a model without a promoted version is still listed
            promoted = None
        for manifest in registry.list(name):
            rows.append({"name": name, "version": manifest.version, "format": manifest.format,
                         "promoted": manifest.version == promoted, "sha256": manifest.sha256[:12],
                         "source": manifest.source})  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        mark = "*" if row["promoted"] else " "
        typer.echo(
            f"{mark} {row['name']:24} {row['version']:10} {row['format']:9} {row['sha256']}  {row['source']}"
        )


@app.command()
def promote(name: str, version: str) -> None:
    """Make `version` the one workers serve; they swap at the next batch boundary."""
    from inference.registry import RegistryError

    try:
        _registry().promote(name, version)
    except RegistryError as exc:
        fail(str(exc))
    typer.echo(f"{name}: promoted {version}")


@app.command()
def rollback(name: str) -> None:
    """Go back to the previously promoted version."""
    from inference.registry import RegistryError

    try:
        version = _registry().rollback(name)
    except RegistryError as exc:
        fail(str(exc))
    typer.echo(f"{name}: rolled back to {version}")


@app.command()
def fetch(
    name: str = typer.Argument(
        "nanodet-m", help="Recipe name: nanodet-m, ssdlite-person, yolo11n-untrained."
    ),
    build: bool = typer.Option(False, "--build", help="Ignore cache and seed copies; run the recipe."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Obtain a model by the project's own recipe (or a checksum-matching seed), verify, register."""
    from inference.fetch import RECIPES
    from sightline.assets import fetch_registered_model

    if name not in RECIPES:
        fail(f"unknown model {name!r}; recipes: {', '.join(sorted(RECIPES))}")
    result = fetch_registered_model(name, _registry(), force_build=build)
    if not quiet:
        version = result.manifest.version if result.manifest else "-"
        typer.echo(
            f"{name}: {result.origin} {result.path} version={version} found on bus.jpg: {dict(result.found)}"
        )
