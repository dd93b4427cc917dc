"""Where evidence is kept: `EvidenceStore`, and the local directory store behind it.

The interface is what an object store offers (put, get, exists, delete, list by age), so an
S3-compatible store can replace the directory without touching the service or the API. Keys are
`<alert_id>/<file>`. A put is atomic: readers see the whole object or none (written to a
temporary name, then renamed), so a crash mid-write never leaves half a clip behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Protocol

KEY = re.compile(r"^[0-9A-Za-z_-]{1,128}/[0-9A-Za-z_.-]{1,64}$")


class EvidenceStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def list_older_than(self, cutoff_s: float) -> list[str]:
        """Keys stored before `cutoff_s` (Unix seconds)."""
        ...

    def alert_ids(self) -> list[str]:
        """The alerts that have anything stored (the first part of the keys)."""
        ...


def checked_key(key: str) -> str:
    """Keys are built from alert ids that arrive over the network: no path may leave the store."""
    if not KEY.match(key) or ".." in key:
        raise ValueError(f"invalid evidence key {key!r}")
    return key


class LocalDirStore:
    """Files under `root`, one folder per alert."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / checked_key(key)

    def put(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        target = self.path(key)
        target.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # the alert's folder, once empty
            target.parent.rmdir()

    def alert_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(f.name for f in self.root.iterdir() if f.is_dir() and KEY.match(f"{f.name}/x"))

    def list_older_than(self, cutoff_s: float) -> list[str]:
        if not self.root.is_dir():
            return []
        old = []
        for folder in self.root.iterdir():
            for item in folder.iterdir() if folder.is_dir() else ():
                if item.is_file() and item.stat().st_mtime < cutoff_s:
                    old.append(f"{folder.name}/{item.name}")
        return sorted(old)


def sweep(store: EvidenceStore, retention_s: float, now: float | None = None) -> int:
    """Delete what is older than the retention; how many objects went."""
    old = store.list_older_than((time.time() if now is None else now) - retention_s)
    for key in old:
        store.delete(key)
    return len(old)
