"""Typer sub-commands of the `sightline` CLI, one module per area."""
