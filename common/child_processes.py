"""External programs that die with the process that started them (Linux parent-death signal).

The embedded broker, Prometheus and Alertmanager run in their own sessions (so a stop can signal their whole
process group). Without more, a ``finsentry run`` (or a test run) killed with SIGKILL, by the OOM killer or by a
closed terminal leaves them running: the memory-only broker keeps port 9092, and the next ``finsentry run`` stops
with "port 9092 on 127.0.0.1 is already in use". :func:`dies_with_parent` prefixes the command with util-linux's
``setpriv --pdeathsig TERM --``, which asks the kernel (``prctl(PR_SET_PDEATHSIG)``, Linux only) to send SIGTERM
to the program when the *thread* that started it ends, then execs the program under the same pid.

The signal follows the starting thread, not the process: start such programs from a thread that lives as long as
they should (every caller here starts them from the main thread). Where ``setpriv`` is missing or too old (it
needs util-linux 2.33, 2018) the command is returned unchanged and the program outlives a killed parent as before.

>>> dies_with_parent(["prometheus", "--version"])[-2:]
['prometheus', '--version']
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Sequence

PARENT_DEATH_SIGNAL = "TERM"
"""Signal sent to the program when its starting thread ends: SIGTERM, the graceful stop of all three programs."""


@functools.cache
def _setpriv() -> str | None:
    """Path of a ``setpriv`` that knows ``--pdeathsig``, or None."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        usage = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "--pdeathsig" in usage else None


def dies_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` run so that it gets SIGTERM when the calling thread ends (see the module doc).

    Args:
        argv: the program and its arguments, as for :class:`subprocess.Popen`.

    Returns:
        ``["setpriv", "--pdeathsig", "TERM", "--", *argv]``, or ``list(argv)`` where no suitable ``setpriv`` exists.
    """
    setpriv = _setpriv()
    if setpriv is None:
        return list(argv)
    return [setpriv, "--pdeathsig", PARENT_DEATH_SIGNAL, "--", *argv]
