"""Real RTSP cameras made from sample videos, for tests and the demo.

ffmpeg cannot serve RTSP to pulling clients, so Debian's `rtsp-server-perl` relays ffmpeg
pushes (`-re -stream_loop -1`, H.264), one mount per camera. The relay speaks RTP over UDP
to its clients, and always takes its source RTP ports from 20000 up, so one relay serves
all cameras of a process (two relays on one machine would collide).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import IO

from streams.devinfra import free_port, port_open
from streams.processes import kill_process


class RtspCameraError(RuntimeError):
    pass


class RtspRelay:
    def __init__(self, streams: dict[str, Path], client_port: int | None = None, log_dir: Path | None = None):
        if shutil.which("rtsp-server-perl") is None or shutil.which("ffmpeg") is None:
            raise RtspCameraError("rtsp-server-perl and ffmpeg are needed; run `make setup`")
        self.streams = streams
        self.client_port = client_port or free_port()
        self.source_port = free_port()
        self.log_dir = log_dir
        self._procs: list[subprocess.Popen[bytes]] = []

    def url(self, path: str) -> str:
        return f"rtsp://127.0.0.1:{self.client_port}/{path}"

    def _log(self, name: str) -> int | IO[bytes]:
        if self.log_dir is None:
            return subprocess.DEVNULL
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return (self.log_dir / f"rtsp-{name}.log").open("ab")

    def start(self, timeout: float = 15.0) -> RtspRelay:
        command = ["rtsp-server-perl", "--clientport", str(self.client_port), "--serverport",
                   str(self.source_port), "--client_listen_address", "127.0.0.1",
                   "--source_listen_address", "127.0.0.1", "--loglevel", "2"]  # fmt: skip
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

    def __enter__(self) -> RtspRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
