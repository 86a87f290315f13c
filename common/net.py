"""Small helpers for the local servers every room runs: free ports, child server processes, server threads.

Shared by ``ingest`` (the embedded broker, the scorer's ``/metrics``) and ``alerts`` (Prometheus and
Alertmanager processes, the relay) so that each piece is written once; like :mod:`finsentry.common.paths`, any
room may import it. No Kafka here: every Kafka client stays in ``ingest``.

>>> port = free_port()
>>> 0 < port < 65536 and not port_open("127.0.0.1", port)
True
"""

from __future__ import annotations

import socket
import socketserver
import subprocess
import threading

IDLE_TIMEOUT_S = 30.0
"""Seconds an HTTP connection of any finsentry server may stay silent (before or within a request) before the
server closes it, so idle or slow clients cannot hold the server's threads."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (bind to port 0, read it, close)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    """True if something accepts TCP connections on ``host:port`` (waits at most ``timeout_s``)."""
    with socket.socket() as s:
        s.settimeout(timeout_s)
        return s.connect_ex((host, port)) == 0


def any_reachable(bootstrap_servers: str, timeout_s: float = 3.0) -> bool:
    """True if a TCP connection to any ``host:port`` of the comma-separated list succeeds within ``timeout_s``
    (an IPv6 host may be bracketed; an empty host is 127.0.0.1; an entry without a port counts as unreachable).

    >>> any_reachable(f"127.0.0.1:{free_port()}, [::1]:x", timeout_s=0.5)
    False
    """
    for entry in bootstrap_servers.split(","):
        host, _, port = entry.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def stop_process(process: subprocess.Popen | None, timeout_s: float = 5.0) -> None:
    """SIGTERM ``process``, then SIGKILL if it has not exited after ``timeout_s``; no-op if None or gone."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout_s)


def serve_in_thread(server: socketserver.BaseServer, name: str, poll_interval: float = 0.5) -> threading.Thread:
    """Run ``server.serve_forever`` in a started daemon thread called ``name``; returns the thread.

    ``poll_interval``: seconds between checks for :func:`stop_serving`'s shutdown request.
    """
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": poll_interval}, name=name, daemon=True
    )
    thread.start()
    return thread


def stop_serving(server: socketserver.BaseServer, thread: threading.Thread | None, timeout_s: float = 5.0) -> None:
    """Stop a server started with :func:`serve_in_thread`: shut it down, close its socket, join the thread.

    ``thread`` None (never served) only closes the socket; ``timeout_s`` bounds the join.
    """
    if thread is not None:
        server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout_s)


__all__ = ["IDLE_TIMEOUT_S", "free_port", "port_open", "serve_in_thread", "stop_process", "stop_serving"]
