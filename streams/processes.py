"""Stopping processes: ask, wait, then force.

Every command, benchmark and test that starts a child stops it the same way, so a child that
ignores SIGTERM never hangs the caller and never outlives it; the dev stack's daemons (process
groups an earlier command started, known only by pid) are stopped the same way. The standard
library has the calls but no function tying them together (psutil's `wait_procs` would, at the
cost of a native dependency for a few lines), hence this module.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable
from multiprocessing.process import BaseProcess
from pathlib import Path
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


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
    except OSError:
        return True
    return state != "Z"


def _wait_pid(pid: int, timeout_s: float | None) -> bool:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while pid_alive(pid):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def kill_process_group(pgid: int) -> None:
    """SIGKILL the process group led by `pgid` and wait until its leader is gone."""
    os.killpg(pgid, signal.SIGKILL)
    _wait_pid(pgid, None)


def stop_process_group(pgid: int, timeout_s: float) -> bool:
    """SIGTERM the process group led by `pgid`, give its leader `timeout_s`, then SIGKILL the
    group; True when it exited without being killed."""
    os.killpg(pgid, signal.SIGTERM)
    if _wait_pid(pgid, timeout_s):
        return True
    os.killpg(pgid, signal.SIGKILL)
    return False
