"""The Sightline HTTP API (FastAPI): `create_app(config)`; see docs/api.md."""

from sightline.api.app import create_app

__all__ = ["create_app"]
