"""One supervisor for the services of ``finsentry run``: service threads and child process groups.

Python services (scorer, aggregator, relay, replay) run as threads of the supervising process and share one
stop event; external programs (the embedded Tansu broker, Prometheus, Alertmanager) run as child processes,
each in its own session, so each is the leader of its own process group and anything it forks stays in it.

Shutdown (:meth:`Supervisor.shutdown`) is bounded: set the stop event, run the cleanups (newest first), join
the threads until ``shutdown_timeout_s``, then send SIGTERM to every child *process group* (newest first, so
the broker goes last and clients can still commit and leave their groups), wait up to ``term_timeout_s``, and
SIGKILL whatever is left of any group. A child group is gone when ``killpg(pgid, 0)`` fails, which also
catches grandchildren a child left behind. Threads are daemon threads, so one that ignores the stop event
cannot keep the process alive after the deadline.

Watching (:meth:`Supervisor.failure`): a service thread that raised, a service thread that returned while no
stop was asked (unless it was started with ``finishes=True``, like the replay), or a child process that exited
is a failure; ``finsentry run`` then shuts everything down and exits non-zero.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finsentry.common.child_processes import dies_with_parent

log = logging.getLogger(__name__)

REPORTED = "finsentry_reported"
"""Attribute set on a log record whose message :meth:`Supervisor.failure` also returns, for the caller to
print: ``finsentry run`` keeps such records off the terminal (they stay in its log file)."""


class ChildProcess:
    """A child process that leads its own process group (started with ``start_new_session=True``).

    Args:
        name: label for logs. popen: the running process; it must have been started in a new session.

    Raises:
        ValueError: the process is not the leader of its own process group.
    """

    def __init__(self, name: str, popen: subprocess.Popen) -> None:
        self.name = name
        self.popen = popen
        self.pgid = popen.pid
        try:
            if os.getpgid(popen.pid) != popen.pid:
                raise ValueError(f"{name} (pid {popen.pid}) does not lead its own process group")
        except ProcessLookupError:
            pass  # already gone (and reaped); nothing to supervise

    @property
    def pid(self) -> int:
        """The child's process id (= its process group id)."""
        return self.popen.pid

    def exited(self) -> int | None:
        """Exit code once the leader has exited (reaping it), else None."""
        return self.popen.poll()

    def group_alive(self) -> bool:
        """True while any process of the group exists (the leader, or something it forked)."""
        self.popen.poll()  # reap the leader if it exited, so a zombie does not count
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists, owned by someone else (pgid reuse); not ours to judge
            return False
        return True

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to every process of the group (no error if it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)


@dataclass
class _Service:
    name: str
    finishes: bool
    thread: threading.Thread = field(default_factory=threading.Thread)
    error: BaseException | None = None
    returned: bool = False


@dataclass
class ShutdownReport:
    """What :meth:`Supervisor.shutdown` did.

    Attributes: seconds: wall time of the shutdown. threads_left: names of service threads still running at the
    deadline (daemon threads; they end with the process). terminated: child groups gone after SIGTERM.
    killed: child groups that needed SIGKILL. survivors: groups still present after SIGKILL (should be empty).
    """

    seconds: float = 0.0
    threads_left: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    survivors: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when every thread stopped in time and every child group ended on SIGTERM."""
        return not (self.threads_left or self.killed or self.survivors)


class Supervisor:
    """Starts and watches service threads and child process groups; stops all of them within bounded time.

    Args:
        shutdown_timeout_s: seconds the service threads get to finish (open batch, commit, leave the group).
        term_timeout_s: seconds the child process groups get between SIGTERM and SIGKILL.

    Attributes:
        stop: the event every service thread receives; set it (or call :meth:`request_stop`) to stop them.
    """

    def __init__(self, shutdown_timeout_s: float = 15.0, term_timeout_s: float = 5.0) -> None:
        self.shutdown_timeout_s = shutdown_timeout_s
        self.term_timeout_s = term_timeout_s
        self.stop = threading.Event()
        self._services: list[_Service] = []
        self._children: list[ChildProcess] = []
        self._cleanups: list[tuple[str, Callable[[], Any]]] = []
        self._stopping = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ starting
    def start_thread(self, name: str, target: Callable[[threading.Event], Any], *, finishes: bool = False) -> None:
        """Run ``target(stop_event)`` in a daemon thread named ``name``.

        ``finishes=True``: the thread may return on its own (a replay that reaches its end); otherwise returning
        before a stop was asked is reported by :meth:`failure`. An exception is kept and reported too.
        """
        service = _Service(name, finishes)

        def run() -> None:
            try:
                target(self.stop)
            except BaseException as exc:  # kept for failure(); the supervisor decides what happens next
                service.error = exc
                if isinstance(exc, OSError):  # a busy port, a missing file: the message says it all
                    log.error("%s failed: %s", name, exc, extra={REPORTED: True})
                else:
                    log.exception("%s failed", name)
            finally:
                service.returned = True

        service.thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            self._services.append(service)
        service.thread.start()

    def spawn(
        self, name: str, args: Sequence[str], *, log_path: Path | None = None, env: dict[str, str] | None = None
    ) -> ChildProcess:
        """Start ``args`` as a child in a new session (own process group), output appended to ``log_path``.

        Raises:
            OSError: the program cannot be started.
        """
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it open
        try:
            popen = subprocess.Popen(
                dies_with_parent(args), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        finally:
            if log_path:
                out.close()
        return self.adopt(name, popen)

    def adopt(self, name: str, popen: subprocess.Popen) -> ChildProcess:
        """Supervise a child another component started in its own session (the broker, Prometheus)."""
        child = ChildProcess(name, popen)
        with self._lock:
            self._children.append(child)
        log.debug("supervising %s (pid %d, process group %d)", name, child.pid, child.pgid)
        return child

    def add_cleanup(self, name: str, fn: Callable[[], Any]) -> None:
        """Call ``fn()`` at shutdown, after the stop event is set (cleanups run newest first)."""
        with self._lock:
            self._cleanups.append((name, fn))

    # ------------------------------------------------------------------ watching
    @property
    def children(self) -> list[ChildProcess]:
        """The supervised child processes, oldest first."""
        with self._lock:
            return list(self._children)

    def thread_done(self, name: str) -> bool:
        """True once the service thread ``name`` has returned (or raised)."""
        with self._lock:
            return any(s.name == name and s.returned for s in self._services)

    def failure(self) -> str | None:
        """A message if a service thread raised or returned unexpectedly or a child exited; else None."""
        if self.stop.is_set():
            return None
        with self._lock:
            services, children = list(self._services), list(self._children)
        for s in services:
            if s.error is not None:
                return f"{s.name} failed: {type(s.error).__name__}: {s.error}"
            if s.returned and not s.finishes:
                return f"{s.name} stopped unexpectedly"
        for c in children:
            code = c.exited()
            if code is not None:
                return f"{c.name} (pid {c.pid}) exited with code {code}"
        return None

    def request_stop(self) -> None:
        """Ask every service thread to stop (thread-safe, idempotent); :meth:`shutdown` does the rest."""
        self.stop.set()

    # ------------------------------------------------------------------ stopping
    def shutdown(self) -> ShutdownReport:
        """Stop everything (see the module doc) and report; idempotent (a second call returns an empty report)."""
        with self._lock:
            if self._stopping:
                return ShutdownReport()
            self._stopping = True
            services, children, cleanups = list(self._services), list(self._children), list(self._cleanups)
        start = time.monotonic()
        report = ShutdownReport()
        self.stop.set()
        for name, fn in reversed(cleanups):
            try:
                fn()
            except Exception:  # one failing cleanup must not keep the others from running
                log.exception("cleanup %s failed", name)
        deadline = start + self.shutdown_timeout_s
        for s in services:
            s.thread.join(max(0.0, deadline - time.monotonic()))
        report.threads_left = [s.name for s in services if s.thread.is_alive()]
        if report.threads_left:
            log.warning("threads still running after %.0f s: %s", self.shutdown_timeout_s, report.threads_left)
        self._stop_children(list(reversed(children)), report)
        report.seconds = time.monotonic() - start
        return report

    def kill_children_now(self) -> None:
        """SIGKILL every child process group at once (the second Ctrl-C); does not wait."""
        for child in self.children:
            child.signal_group(signal.SIGKILL)

    def _stop_children(self, children: list[ChildProcess], report: ShutdownReport) -> None:
        for child in children:  # newest first, one at a time: the broker, started first, stops last
            if not child.group_alive():
                report.terminated.append(child.name)
                continue
            child.signal_group(signal.SIGTERM)
            if _wait_until(lambda c=child: not c.group_alive(), self.term_timeout_s):
                report.terminated.append(child.name)
                continue
            log.warning("%s (process group %d) did not stop on SIGTERM; killing it", child.name, child.pgid)
            child.signal_group(signal.SIGKILL)
            report.killed.append(child.name)
            if not _wait_until(lambda c=child: not c.group_alive(), 5.0):
                report.survivors.append(child.name)
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(1.0)  # reap the leader


def _wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


__all__ = ["ChildProcess", "ShutdownReport", "Supervisor"]
