"""Toxiproxy (Shopify's TCP fault proxy) for the dev stack: where its server is, and its HTTP API.

The chaos benchmark puts the dev broker(s) and Redis behind it to inject network faults that
killing processes cannot: latency, replies that never arrive, reset connections. The only
PyPI client (`toxiproxy-python`, last released in 2019) wraps `requests` and predates the
current toxics, so the few calls needed are made here with httpx. `scripts/setup.sh` builds
the server from source with Go into the cache (`toxiproxy-server`, v2.5.0).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from streams.paths import cache_dir

Stream = Literal["upstream", "downstream"]  # client -> server, server -> client


class ToxiproxyError(RuntimeError):
    pass


def server_binary() -> Path:
    """The server `make setup` built into the cache, else one on PATH."""
    cached = cache_dir() / "bin" / "toxiproxy-server"
    if cached.exists():
        return cached
    found = shutil.which("toxiproxy-server")
    if found is None:
        raise ToxiproxyError(f"toxiproxy-server is not installed ({cached}); run `make setup`")
    return Path(found)


@dataclass(frozen=True)
class Proxy:
    """One proxied TCP address: clients connect to `listen`, the proxy to `upstream`."""

    name: str
    listen: str
    upstream: str

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream, "enabled": True}


class Toxiproxy:
    """The calls the chaos faults need on a running server (`http://127.0.0.1:PORT`)."""

    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.http = httpx.Client(base_url=url, timeout=timeout_s)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ToxiproxyError(f"toxiproxy {method} {path}: {exc}") from exc
        if response.status_code >= 300:
            raise ToxiproxyError(f"toxiproxy {method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def populate(self, proxies: list[Proxy]) -> None:
        """Create the proxies, or leave them as they are when they already exist."""
        self._call("POST", "/populate", [p.as_json() for p in proxies])

    def add_toxic(
        self, proxy: str, kind: str, stream: Stream = "downstream", name: str | None = None,
        **attributes: int,
    ) -> str:  # fmt: skip
        """Add a toxic (`latency`, `timeout`, `reset_peer`, ...) to every connection of `proxy`,
        current and new; returns its name for `remove_toxic`."""
        name = name or f"{kind}_{stream}"
        body = {"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes}
        self._call("POST", f"/proxies/{proxy}/toxics", body)
        return name

    def remove_toxic(self, proxy: str, name: str) -> None:
        """Removing a `timeout` toxic also closes the connections it held (toxiproxy's cleanup)."""
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def close(self) -> None:
        self.http.close()
