"""Binding listeners to the configured host, with a one-line error when the port is taken.

A bare `OSError: [Errno 98]` traceback does not say which of five ports (API, decoder, inference,
alerts, drift metrics) clashed or where to change it; `ListenError` names the address and the
setting, and commands print it as their one error line.
"""

from __future__ import annotations

import errno
import socket


class ListenError(OSError):
    """A listener that could not bind: `str()` is the whole story in one line."""


def describe(host: str, port: int, setting: str, exc: OSError) -> str:
    why = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return f"cannot listen on {host}:{port} ({why}); change `{setting}` or stop what uses the port"


def bind_socket(host: str, port: int, setting: str) -> socket.socket:
    """A listening TCP socket on host:port (IPv6 when `host` is an IPv6 address), ready for accept."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restarts within TIME_WAIT still bind
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ListenError(describe(host, port, setting, exc)) from None
    sock.set_inheritable(True)
    return sock
