"""External programs die with the process that started them: a SIGKILLed ``finsentry run`` (or test) no longer
leaves the embedded broker holding its port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from finsentry.common.child_processes import dies_with_parent
from finsentry.common.net import port_open

STARTER = """
import sys, time
from finsentry.ingest.broker import EmbeddedBroker
b = EmbeddedBroker(port=0)
b.start()
print(b.process.pid, b.port, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Running, not a zombie (a container's init may be slow to reap an orphan)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_the_command_is_wrapped_in_setpriv_pdeathsig():
    argv = dies_with_parent(["tansu", "broker"])
    # util-linux is essential on Debian: setpriv is there, so the wrapper must be used
    assert Path(argv[0]).name == "setpriv" and argv[1:] == ["--pdeathsig", "TERM", "--", "tansu", "broker"], argv


def test_broker_stops_when_its_starter_is_killed():
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdout=subprocess.PIPE, text=True)
    broker_pid = 0
    try:
        line = starter.stdout.readline()
        broker_pid, port = (int(x) for x in line.split())
        assert _alive(broker_pid) and port_open("127.0.0.1", port), line
        os.kill(starter.pid, signal.SIGKILL)
        starter.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (_alive(broker_pid) or port_open("127.0.0.1", port)):
            time.sleep(0.1)
        assert not _alive(broker_pid), f"tansu pid {broker_pid} still running after its starter was SIGKILLed"
        assert not port_open("127.0.0.1", port), f"port {port} still open"
    finally:
        if starter.poll() is None:
            starter.kill()
        if broker_pid and _alive(broker_pid):
            os.killpg(broker_pid, signal.SIGKILL)
