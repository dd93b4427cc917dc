"""`sightline cameras reference CAMERA`: the reference frame the moved-camera check compares with.

The decoder keeps each camera's reference in Redis (decoders/reference.py) and re-reads it every
`health.reference_check_s`. Clearing it makes the decoder take the next good frame as the new
reference: do that after re-aiming a camera on purpose, or when its rules are saved for a new
view; `--image` sets one from a file instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sightline.commands.common import config, fail

app = typer.Typer(help="Cameras: the reference frame of the camera health checks.", no_args_is_help=True)


@app.command()
def reference(
    camera: Annotated[str, typer.Argument(help="Camera id.")],
    image: Annotated[Path | None, typer.Option("--image", help="Image file to use as the reference.")] = None,
    show: Annotated[bool, typer.Option("--show", help="Only say which reference is stored.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """Retake CAMERA's reference at its next good frame (default), set it from --image, or --show it."""
    import redis

    from decoders.reference import ReferenceStore, load_image, reference_id

    cfg = config()
    if camera not in {c.id for c in cfg.cameras}:
        typer.secho(f"note: camera {camera!r} is not in the configuration", err=True)
    store = ReferenceStore.connect(cfg.redis.url)
    try:
        if image is not None:
            try:
                picture = load_image(image)
            except ValueError as exc:
                fail(str(exc), 2)
            store.put(camera, picture)
            result = {"camera": camera, "action": "set", "reference_id": reference_id(picture)}
        elif show:
            stored = store.get(camera)
            result = {
                "camera": camera,
                "action": "show",
                "reference_id": None if stored is None else reference_id(stored),
                "size": None if stored is None else [int(stored.shape[1]), int(stored.shape[0])],
            }
        else:
            action = "cleared" if store.clear(camera) else "none stored"
            result = {"camera": camera, "action": action, "reference_id": None}
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        fail(f"Redis at {cfg.redis.url} unreachable: {exc}")
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(result))
    elif result["action"] == "set":
        typer.echo(f"camera {camera}: reference {result['reference_id']} set from {image}")
    elif result["action"] == "show":
        stored_id = result["reference_id"] or "none (the decoder takes the next good frame)"
        typer.echo(f"camera {camera}: reference {stored_id}")
    else:
        typer.echo(f"camera {camera}: reference {result['action']}; the decoder takes the next good frame")
