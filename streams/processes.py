"""Stopping child processes: ask, wait, then force.

Every command, benchmark and test that starts a child stops it the same way, so a child that
ignores SIGTERM never hangs the caller and never outlives it. The standard library has the three
calls but no function tying them together (psutil's `wait_procs` would, at the cost of a native
dependency for twelve lines), hence this module.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterable
from multiprocessing.process import BaseProcess
from typing import Any

Child = subprocess.Popen[Any] | BaseProcess

KILL_WAIT_S = 10.0  # after SIGKILL only a stuck kernel call delays the exit


def _running(proc: Child) -> bool:
    return proc.poll() is None if isinstance(proc, subprocess.Popen) else proc.is_alive()


def _wait(proc: Child, timeout_s: float) -> bool:
    """True when the child exited within timeout_s."""
    if isinstance(proc, subprocess.Popen):
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True
    proc.join(timeout_s)
    return not proc.is_alive()


def kill_process(proc: Child) -> None:
    """SIGKILL the child (if still running) and reap it: a hard stop, as a machine losing power."""
    if _running(proc):
        if isinstance(proc, subprocess.Popen):
            proc.send_signal(signal.SIGKILL)
        else:
            proc.kill()
        _wait(proc, KILL_WAIT_S)


def stop_processes(procs: Iterable[Child], timeout_s: float, *, terminate: bool = True) -> list[Child]:
    """Stop children together: SIGTERM all (unless `terminate` is False because the caller
    already asked them to stop another way), give them `timeout_s` in all, then SIGKILL the rest.

    Returns the children that had to be killed, so callers can say so.
    """
    procs = list(procs)
    if terminate:
        for proc in procs:
            if _running(proc):
                proc.terminate()
    deadline = time.monotonic() + timeout_s
    killed: list[Child] = []
    for proc in procs:
        if not _wait(proc, max(0.0, deadline - time.monotonic())):
            kill_process(proc)
            killed.append(proc)
    return killed


def stop_process(proc: Child, timeout_s: float, *, terminate: bool = True) -> bool:
    """Stop one child as `stop_processes` does; True when it exited without being killed."""
    return not stop_processes([proc], timeout_s, terminate=terminate)
