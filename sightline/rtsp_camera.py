"""A real RTSP camera made from a sample video, for tests and the demo.

ffmpeg cannot serve RTSP to pulling clients, so Debian's `rtsp-server-perl` relays an
ffmpeg push (`-re -stream_loop -1`, H.264). That relay speaks RTP over UDP to its clients.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

from streams.devinfra import _port_open, free_port


class RtspCameraError(RuntimeError):
    pass


class RtspCamera:
    def __init__(
        self, video: Path, path: str = "cam1", client_port: int | None = None, log_dir: Path | None = None
    ):
        if shutil.which("rtsp-server-perl") is None or shutil.which("ffmpeg") is None:
            raise RtspCameraError("rtsp-server-perl and ffmpeg are needed; run `make setup`")
        self.video = video
        self.path = path
        self.client_port = client_port or free_port()
        self.source_port = free_port()
        self.log_dir = log_dir
        self._server: subprocess.Popen[bytes] | None = None
        self._pusher: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.client_port}/{self.path}"

    def _log(self, name: str) -> int | object:
        if self.log_dir is None:
            return subprocess.DEVNULL
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return (self.log_dir / f"{self.path}-{name}.log").open("ab")

    def start(self, timeout: float = 15.0) -> None:
        self._server = subprocess.Popen(
            [
                "rtsp-server-perl",
                "--clientport",
                str(self.client_port),
                "--serverport",
                str(self.source_port),
                "--client_listen_address",
                "127.0.0.1",
                "--source_listen_address",
                "127.0.0.1",
                "--loglevel",
                "2",
            ],
            stdout=self._log("server"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not (_port_open(self.source_port) and _port_open(self.client_port)):
            if time.monotonic() > deadline or self._server.poll() is not None:
                raise RtspCameraError("rtsp-server-perl did not start listening")
            time.sleep(0.1)
        self._pusher = subprocess.Popen(
            [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-stream_loop",
                "-1",
                "-i",
                str(self.video),
                "-an",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                "10",
                "-f",
                "rtsp",
                f"rtsp://127.0.0.1:{self.source_port}/{self.path}",
            ],
            stdout=self._log("ffmpeg"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(1.0)  # the relay needs the pushed stream's SDP before clients can DESCRIBE

    def kill(self) -> None:
        """Hard stop of server and pusher, as a camera that loses power."""
        for proc in (self._pusher, self._server):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        self._pusher = self._server = None

    def __enter__(self) -> RtspCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
