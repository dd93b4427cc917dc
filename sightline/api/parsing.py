"""Numbers the API reads from headers and cookies: ASCII decimal digits, nothing else.

`str.isdigit()` also accepts other scripts' digits and superscripts ("٣", "²"): `int()` then
refuses some of them (a 500 instead of the 4xx the request deserves) and reads others as numbers
the client never wrote in the protocol's own digits.
"""

from __future__ import annotations


def ascii_int(text: str) -> int | None:
    """``text`` as a non-negative integer when it is ASCII digits only, else None."""
    return int(text) if text.isascii() and text.isdigit() else None
