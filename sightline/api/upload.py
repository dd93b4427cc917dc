"""Reading a /v1/detect upload from the request stream, never past `api.max_upload_bytes`.

Starlette's `request.form()` spools a multipart body to a temporary file before anything can
check its size, and a chunked upload has no Content-Length to check up front. Here the body is
read chunk by chunk as it arrives: raw bodies are the image, multipart bodies go through
python-multipart's streaming parser, and the request is refused with 413 the moment the bytes
received pass the limit. Nothing touches the disk and at most about `limit` bytes are held.
"""

from __future__ import annotations

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from sightline.api.errors import ApiError
from sightline.api.parsing import ascii_int

# Multipart framing around the file (boundaries, part headers, a few small fields) allowed on top
# of the image itself; anything beyond is not an image upload we serve.
MULTIPART_OVERHEAD = 64 * 1024


# On a refusal mid-upload uvicorn would otherwise keep reading (and discarding) the rest of the
# body to reuse the connection; `Connection: close` makes it hang up right after the answer.
CLOSE = {"Connection": "close"}


def _too_large(limit: int, size: str = "upload") -> ApiError:
    return ApiError(413, "upload_too_large", f"{size} exceeds the limit of {limit} bytes", CLOSE)


class _FirstFile:
    """python-multipart callbacks keeping the bytes of the first part that carries a filename."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.done = False
        self._field = b""
        self._disposition = b""
        self._capturing = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
        }

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        if self._field.lower() == b"content-disposition":
            self._disposition += data[start:end]

    def _on_header_end(self) -> None:
        self._field = b""

    def _on_headers_finished(self) -> None:
        _kind, options = parse_options_header(self._disposition)
        self._capturing = not self.done and b"filename" in options
        self._disposition = b""

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._capturing:
            return
        self.size += end - start
        if self.size > self.limit:
            raise _too_large(self.limit)
        self.chunks.append(data[start:end])

    def _on_part_end(self) -> None:
        if self._capturing:
            self.done, self._capturing = True, False


async def read_upload(request: Request, limit: int) -> bytes:
    """The image bytes: the raw body, or the first file of a multipart form; 413 past `limit`."""
    content_type = request.headers.get("content-type", "")
    multipart = content_type.startswith("multipart/form-data")
    allowed = limit + MULTIPART_OVERHEAD if multipart else limit
    length = ascii_int(request.headers.get("content-length", ""))
    if length is not None and length > allowed:
        raise _too_large(limit, f"upload of {length} bytes")
    parser, first = None, None
    if multipart:
        boundary = parse_options_header(content_type)[1].get(b"boundary")
        if not boundary:
            raise ApiError(400, "invalid_multipart", "multipart/form-data without a boundary")
        first = _FirstFile(limit)
        parser = MultipartParser(boundary, first.callbacks())  # type: ignore[arg-type]
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > allowed:
            raise _too_large(limit)
        if parser is None:
            chunks.append(chunk)
            continue
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise ApiError(400, "invalid_multipart", f"malformed multipart body: {exc}") from None
    if first is None:
        return b"".join(chunks)
    if not first.done:
        raise ApiError(400, "no_file", "the multipart form has no (complete) file part")
    return b"".join(first.chunks)
