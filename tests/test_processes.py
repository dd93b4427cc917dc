"""streams.processes: children that honour SIGTERM stop cleanly; those that ignore it are killed."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time

from streams.processes import kill_process, stop_process, stop_processes

IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
    "time.sleep(60)"
)


def _child(code: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def test_a_child_that_honours_sigterm_stops_without_being_killed() -> None:
    proc = _child("import time; print('ready', flush=True); time.sleep(60)")
    assert stop_process(proc, 10) is True
    assert proc.returncode == -15


def test_children_that_ignore_sigterm_are_killed_after_one_shared_timeout() -> None:
    procs = [_child(IGNORES_TERM), _child(IGNORES_TERM)]
    started = time.monotonic()
    assert stop_processes(procs, 1.0) == procs
    assert time.monotonic() - started < 5, "one timeout for all, not one each"
    assert [p.returncode for p in procs] == [-9, -9]


def test_a_process_asked_to_stop_another_way_is_only_waited_for_then_killed() -> None:
    proc = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))
    proc.start()
    assert stop_process(proc, 0.5, terminate=False) is False
    assert proc.exitcode == -9


def test_kill_process_reaps_and_ignores_a_child_that_already_exited() -> None:
    proc = _child(IGNORES_TERM)
    kill_process(proc)
    assert proc.returncode == -9
    kill_process(proc)
    assert proc.returncode == -9
