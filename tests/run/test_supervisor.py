"""The supervisor with real child processes (``sh``, ``sleep``) and threads: groups, bounded stop, failures."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from run_testkit import group_alive

from finsentry.supervisor import ChildProcess, Supervisor

# A child that forks a grandchild into its own process group and then waits: killing only the child's pid
# would leave the grandchild behind.
FORKING = "sleep 300 & wait"
# A child that ignores SIGTERM (and whose grandchild does too): only SIGKILL ends it.
STUBBORN = "trap '' TERM; sleep 300 & wait; sleep 300"


def _grandchildren(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5 of stat: pgrp
                found.append(int(entry.name))
    return found


def _wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_shutdown_ends_whole_process_groups_newest_first() -> None:
    sup = Supervisor(shutdown_timeout_s=2, term_timeout_s=3)
    first = sup.spawn("first", ["sh", "-c", FORKING])
    second = sup.spawn("second", ["sh", "-c", FORKING])
    assert _wait_for(lambda: len(_grandchildren(first.pgid)) == 2 and len(_grandchildren(second.pgid)) == 2)
    assert first.pgid == first.pid and os.getpgid(first.pid) == first.pid  # own group, not ours
    assert os.getpgid(first.pid) != os.getpgrp()
    report = sup.shutdown()
    assert report.terminated == ["second", "first"]
    assert report.clean
    assert not group_alive(first.pgid) and not group_alive(second.pgid)
    assert _grandchildren(first.pgid) == [] and _grandchildren(second.pgid) == []


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    sup = Supervisor(shutdown_timeout_s=1, term_timeout_s=0.5)
    child = sup.spawn("stubborn", ["sh", "-c", STUBBORN])
    assert _wait_for(lambda: len(_grandchildren(child.pgid)) == 2)
    time.sleep(0.2)  # let sh install its trap
    report = sup.shutdown()
    assert report.killed == ["stubborn"] and report.survivors == []
    assert not report.clean
    assert not group_alive(child.pgid)


def test_threads_get_the_stop_event_and_cleanups_run_newest_first() -> None:
    sup = Supervisor(shutdown_timeout_s=5)
    order: list[str] = []
    seen = threading.Event()

    def service(stop: threading.Event) -> None:
        seen.set()
        stop.wait()
        order.append("service stopped")

    sup.start_thread("svc", service)
    sup.add_cleanup("a", lambda: order.append("cleanup a"))
    sup.add_cleanup("b", lambda: order.append("cleanup b"))
    assert seen.wait(5)
    assert sup.failure() is None
    report = sup.shutdown()
    assert report.clean and report.threads_left == []
    assert order[:2] == ["cleanup b", "cleanup a"] and "service stopped" in order
    assert sup.shutdown().seconds == 0.0  # idempotent


def test_a_thread_that_ignores_the_stop_is_reported_not_waited_for() -> None:
    sup = Supervisor(shutdown_timeout_s=0.3)
    release = threading.Event()
    sup.start_thread("deaf", lambda stop: release.wait(30))
    started = time.monotonic()
    report = sup.shutdown()
    assert report.threads_left == ["deaf"]
    assert time.monotonic() - started < 5
    release.set()


def test_failures_a_raising_thread_an_unexpected_return_and_an_exited_child() -> None:
    sup = Supervisor(shutdown_timeout_s=1)

    def boom(stop: threading.Event) -> None:
        raise ValueError("bad thing")

    sup.start_thread("boom", boom)
    assert _wait_for(lambda: sup.failure() is not None)
    assert sup.failure() == "boom failed: ValueError: bad thing"
    sup.shutdown()

    sup = Supervisor(shutdown_timeout_s=1)
    sup.start_thread("quits", lambda stop: None)
    assert _wait_for(lambda: sup.failure() is not None)
    assert sup.failure() == "quits stopped unexpectedly"
    sup.shutdown()

    sup = Supervisor(shutdown_timeout_s=1)
    sup.start_thread("replay", lambda stop: None, finishes=True)
    assert _wait_for(lambda: sup.thread_done("replay"))
    assert sup.failure() is None
    child = sup.spawn("short", ["sh", "-c", "exit 3"])
    assert _wait_for(lambda: sup.failure() is not None)
    assert sup.failure() == f"short (pid {child.pid}) exited with code 3"
    sup.shutdown()


def test_kill_children_now_sigkills_every_group() -> None:
    sup = Supervisor()
    child = sup.spawn("stubborn", ["sh", "-c", STUBBORN])
    assert _wait_for(lambda: len(_grandchildren(child.pgid)) == 2)
    sup.kill_children_now()
    assert _wait_for(lambda: not child.group_alive())


def test_adopting_a_process_outside_its_own_group_is_refused() -> None:
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # same group as the tests
    try:
        with pytest.raises(ValueError, match="does not lead its own process group"):
            ChildProcess("shared", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
