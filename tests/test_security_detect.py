"""/v1/detect under hostile uploads: chunked bodies past the limit, and more requests than slots.

Real uvicorn, real NanoDet model and real httpx clients sending chunked (no Content-Length) bodies;
no broker is needed (the tail is off).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from sightline.api import create_app
from sightline.api.server import ServerThread
from sightline.config import SightlineConfig

LIMIT = 1_000_000
CHUNK = 64 * 1024
HUGE = 64 * 1024 * 1024  # what the client would send if the server never stopped reading


@pytest.fixture(scope="module")
def server(model_registry: Path) -> Iterator[ServerThread]:
    config = SightlineConfig()
    config.inference.registry_dir = model_registry
    config.inference.max_batch, config.inference.max_wait_ms = 4, 5
    config.api.max_upload_bytes = LIMIT
    config.api.max_queue = 1
    with ServerThread(create_app(config, tail=False)) as running:
        yield running


class _Body:
    """A chunked request body that counts what the server let it send."""

    def __init__(self, head: bytes, total: int, tail: bytes = b"") -> None:
        self.head, self.total, self.tail, self.sent = head, total, tail, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in (self.head, *self._filler(), self.tail):
            self.sent += len(chunk)
            yield chunk

    def _filler(self) -> Iterator[bytes]:
        left = self.total - len(self.head) - len(self.tail)
        while left > 0:
            yield b"\0" * min(CHUNK, left)
            left -= CHUNK


def _post(server: ServerThread, body: _Body, content_type: str) -> httpx.Response | None:
    """The response, or None when the server answered and closed before the client finished sending."""
    try:
        return httpx.post(
            f"{server.url}/v1/detect", content=iter(body), headers={"Content-Type": content_type}, timeout=60
        )
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        return None


def _check_rejected_early(response: httpx.Response | None, body: _Body) -> None:
    if response is not None:
        assert response.status_code == 413, response.text
        assert response.json()["error"] == "upload_too_large"
    # Rejected while streaming: the server stopped reading near the limit (plus socket buffers),
    # it did not take in (or spool) the whole body first.
    assert body.sent < HUGE // 4, f"the server read {body.sent} bytes of a {HUGE}-byte upload"


def test_chunked_raw_body_over_the_limit_is_refused_while_it_streams(
    server: ServerThread, bus_jpg: Path
) -> None:
    body = _Body(bus_jpg.read_bytes(), HUGE)
    response = _post(server, body, "image/jpeg")
    _check_rejected_early(response, body)


def test_chunked_multipart_over_the_limit_is_refused_without_spooling(
    server: ServerThread, bus_jpg: Path
) -> None:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n"
    ).encode() + bus_jpg.read_bytes()
    body = _Body(head, HUGE, f"\r\n--{boundary}--\r\n".encode())
    response = _post(server, body, f"multipart/form-data; boundary={boundary}")
    _check_rejected_early(response, body)


def test_chunked_multipart_within_the_limit_is_parsed_across_chunk_boundaries(
    server: ServerThread, bus_jpg: Path
) -> None:
    jpeg = bus_jpg.read_bytes()
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bus.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + jpeg
        + f"\r\n--{boundary}--\r\n".encode()
    )
    # 7-byte chunks: boundaries and headers are split between chunks.
    chunks = (body[i : i + 7] for i in range(0, len(body), 7))
    response = httpx.post(
        f"{server.url}/v1/detect",
        content=chunks,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert "bus" in response.json()["detections"]["class_name"]
    plain = httpx.post(f"{server.url}/v1/detect", content=jpeg, timeout=60).json()
    assert response.json()["detections"] == plain["detections"]


def test_multipart_without_a_file_part_or_boundary_is_a_400(server: ServerThread) -> None:
    boundary = uuid.uuid4().hex
    form = f'--{boundary}\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--{boundary}--\r\n'
    no_file = httpx.post(
        f"{server.url}/v1/detect",
        content=form.encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert no_file.status_code == 400 and no_file.json()["error"] == "no_file", no_file.text
    no_boundary = httpx.post(
        f"{server.url}/v1/detect", content=b"x", headers={"Content-Type": "multipart/form-data"}
    )
    assert no_boundary.status_code == 400 and no_boundary.json()["error"] == "invalid_multipart"


def test_a_full_queue_answers_503_with_retry_after(server: ServerThread, bus_jpg: Path) -> None:
    """api.max_queue = 1: while one upload holds the only slot, the next request is refused at once."""
    jpeg = bus_jpg.read_bytes()
    release = threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield jpeg[:1000]
        release.wait(30)  # the slot stays taken while the upload is still arriving
        yield jpeg[1000:]

    first: list[httpx.Response] = []
    holder = threading.Thread(
        target=lambda: first.append(httpx.post(f"{server.url}/v1/detect", content=slow_body(), timeout=60))
    )
    holder.start()
    try:
        # The holder has its slot once the in-process gauge says so (then nothing else is running).
        deadline = time.monotonic() + 10
        while REGISTRY.get_sample_value("sightline_api_detect_inflight") != 1:
            assert time.monotonic() < deadline, "the slow upload was never admitted"
            time.sleep(0.02)
        refused = httpx.post(f"{server.url}/v1/detect", content=jpeg, timeout=30)
        assert refused.status_code == 503 and refused.json()["error"] == "overloaded", refused.text
        assert int(refused.headers["Retry-After"]) >= 1
    finally:
        release.set()
        holder.join(60)
    assert first and first[0].status_code == 200, first
    # The slot is free again.
    assert httpx.post(f"{server.url}/v1/detect", content=jpeg, timeout=30).status_code == 200
