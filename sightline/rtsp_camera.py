"""Real RTSP cameras made from sample videos, for tests and the demo.

ffmpeg cannot serve RTSP to pulling clients, so Debian's `rtsp-server-perl` relays ffmpeg
pushes (`-re -stream_loop -1`, H.264), one mount per camera. The relay speaks RTP over UDP
to its pushers and clients, taking two UDP ports per stream from a counter. Out of the box
every relay counts from 20000 and never retries a failed bind, so a second relay on the
machine (parallel test workers, a demo beside the tests) got cameras that send nothing.
Each relay therefore runs on a block of UDP ports of its own, reserved across processes.
"""

from __future__ import annotations

import fcntl
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from streams.devinfra import free_port, port_open
from streams.processes import kill_process


class RtspCameraError(RuntimeError):
    pass


# Below the kernel's ephemeral range (32768 up), so no client socket is handed these ports.
RTP_PORTS_FIRST, RTP_PORTS_END, RTP_BLOCK = 20000, 32000, 400
# rtsp-server-perl has a `--rtp_start_port` option, but its housekeeping resets the counter to
# the package variable (20000) whenever no camera is mounted: point that variable at the option.
RELAY_SCRIPT = (
    "use AnyEvent; use RTSP::Server; my $server = RTSP::Server->new_with_options;"
    " $RTSP::Server::RTP_START_PORT = $server->rtp_start_port;"
    " $server->listen; AnyEvent->condvar->recv;"
)


def _udp_ports_free(first: int, count: int) -> bool:
    for port in range(first, first + count):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def reserve_rtp_ports() -> tuple[int, IO[bytes]]:
    """A block of UDP ports for one relay, held by an flock until the returned file is closed.

    Hand-written because the relay cannot pick its own free ports; a lock file per block is
    what lets relays in separate processes (pytest-xdist workers) stay out of each other's way.
    """
    blocks = list(range(RTP_PORTS_FIRST, RTP_PORTS_END, RTP_BLOCK))
    random.shuffle(blocks)
    for first in blocks:
        lock = (Path(tempfile.gettempdir()) / f"sightline-rtsp-rtp-{first}.lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        if _udp_ports_free(first, RTP_BLOCK):
            return first, lock
        lock.close()
    raise RtspCameraError(f"no free block of {RTP_BLOCK} UDP ports in {RTP_PORTS_FIRST}-{RTP_PORTS_END}")


class RtspRelay:
    def __init__(self, streams: dict[str, Path], client_port: int | None = None, log_dir: Path | None = None):
        if shutil.which("rtsp-server-perl") is None or shutil.which("ffmpeg") is None:
            raise RtspCameraError("rtsp-server-perl and ffmpeg are needed; run `make setup`")
        self.streams = streams
        self.client_port = client_port or free_port()
        self.source_port = free_port()
        self.log_dir = log_dir
        self._procs: list[subprocess.Popen[bytes]] = []
        self._rtp_lock: IO[bytes] | None = None

    def url(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.client_port}/{path}"

    def _log(self, name: str) -> int | IO[bytes]:
        if self.log_dir is None:
            return subprocess.DEVNULL
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return (self.log_dir / f"rtsp-{name}.log").open("ab")

    def start(self, timeout: float = 15.0) -> RtspRelay:
        rtp_first, self._rtp_lock = reserve_rtp_ports()
        command = ["perl", "-e", RELAY_SCRIPT, "--", "--clientport", str(self.client_port), "--serverport",
                   str(self.source_port), "--client_listen_address", "127.0.0.1",
                   "--source_listen_address", "127.0.0.1", "--rtp_start_port", str(rtp_first),
                   "--loglevel", "2"]  # fmt: skip
        server = subprocess.Popen(
            command, stdout=self._log("server"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self._procs.append(server)
        deadline = time.monotonic() + timeout
        while not (port_open(self.source_port) and port_open(self.client_port)):
            if time.monotonic() > deadline or server.poll() is not None:
                self.kill()
                raise RtspCameraError("rtsp-server-perl did not start listening")
            time.sleep(0.1)
        for path, video in self.streams.items():
            target = f"rtsp://127.0.0.1:{self.source_port}/{path}"
            push = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
                    "-i", str(video), "-an", "-c:v", "libx264", "-preset", "ultrafast",
                    "-tune", "zerolatency", "-g", "10", "-f", "rtsp", target]  # fmt: skip
            self._procs.append(
                subprocess.Popen(
                    push,
                    stdout=self._log(path),
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        time.sleep(1.0)  # the relay needs each pushed stream's SDP before clients can DESCRIBE
        return self

    def kill(self) -> None:
        """Hard stop of the relay and its pushers, as cameras that lose power."""
        for proc in reversed(self._procs):
            kill_process(proc)
        self._procs = []
        if self._rtp_lock is not None:
            self._rtp_lock.close()
            self._rtp_lock = None

    def __enter__(self) -> RtspRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
