"""Kafka header helpers shared by the header-based contracts (frames, dead letters)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Headers = Sequence[tuple[str, bytes | None]]


def headers_to_dict(headers: Iterable[tuple[str, bytes | str | None]] | None) -> dict[str, str]:
    """Decode headers to text; the last value wins, as in most Kafka clients."""
    out: dict[str, str] = {}
    for name, value in headers or ():
        if value is None:
            continue
        out[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return out


def dict_to_headers(values: dict[str, object]) -> list[tuple[str, bytes]]:
    return [(name, str(value).encode()) for name, value in values.items() if value is not None]
