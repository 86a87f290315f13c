"""Run the real Prometheus tools: ``promtool`` / ``amtool`` checks and Prometheus / Alertmanager servers.

The binaries come from Debian's ``prometheus`` and ``prometheus-alertmanager`` packages (Alertmanager is
installed as ``prometheus-alertmanager``; upstream tarballs call it ``alertmanager``; both are found).
Servers bind 127.0.0.1 on a free port by default, keep their data in a folder the caller owns, and are
stopped with SIGTERM (SIGKILL after a timeout). Used by the tests and by ``finsentry run --with-prometheus``.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from finsentry.alerts.configs import write_yaml
from finsentry.common.child_processes import dies_with_parent
from finsentry.common.net import free_port, stop_process

log = logging.getLogger(__name__)

APT_HINT = "apt-get install -y --no-install-recommends prometheus prometheus-alertmanager"


class BinaryNotFound(FileNotFoundError):
    """A Prometheus tool is not on PATH; the message says which package installs it."""


class ProcessStartError(RuntimeError):
    """A server exited or did not become ready in time; the message includes the end of its log."""


def find_binary(*names: str) -> Path:
    """The first of ``names`` found on PATH.

    Raises:
        BinaryNotFound: none is installed.
    """
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise BinaryNotFound(f"none of {', '.join(names)} is on PATH; install with: {APT_HINT}")


def promtool(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``promtool ARGS`` (e.g. ``check rules FILE``, ``test rules FILE``); output captured, not checked."""
    return subprocess.run(
        [str(find_binary("promtool")), *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )


def amtool(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``amtool ARGS`` (e.g. ``check-config FILE``); output captured, not checked."""
    return subprocess.run(
        [str(find_binary("amtool")), *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )


def http_json(url: str, data: Any = None, timeout_s: float = 5.0) -> Any:
    """GET ``url`` (or POST ``data`` as JSON) and parse the JSON answer.

    Raises:
        urllib.error.URLError / HTTPError: unreachable or non-2xx.
    """
    body = None if data is None else json.dumps(data).encode("utf-8")
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


class _Server:
    """A server binary with a YAML config, a data folder, a log file and a readiness URL."""

    binary_names: tuple[str, ...] = ()
    config_name = "config.yml"

    def __init__(self, config: dict[str, Any], workdir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.workdir = Path(workdir)
        self.host = host
        self.port = port or free_port(host)
        self.log_path = self.workdir / f"{self.binary_names[0]}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def _args(self, config_path: Path) -> list[str]:
        raise NotImplementedError

    def start(self, timeout_s: float = 30.0) -> _Server:
        """Write the config, start the process, wait until ``/-/ready`` answers 200.

        Raises:
            BinaryNotFound: the binary is not installed.
            ProcessStartError: it exited or was not ready within ``timeout_s``.
        """
        binary = find_binary(*self.binary_names)
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = write_yaml(self.config, self.workdir / self.config_name)
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                dies_with_parent([str(binary), *self._args(config_path)]),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ProcessStartError(f"{binary.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as resp:
                    if resp.status == 200:
                        log.info("%s ready on %s (pid %d)", binary.name, self.url, self.process.pid)
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise ProcessStartError(f"{binary.name} not ready on {self.url} within {timeout_s} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        """The last ``chars`` characters of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; idempotent."""
        stop_process(self.process, timeout_s)

    def __enter__(self) -> _Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PrometheusServer(_Server):
    """Prometheus with ``config`` (see :func:`finsentry.alerts.configs.prometheus_config`), TSDB in ``workdir``."""

    binary_names = ("prometheus",)
    config_name = "prometheus.yml"

    def _args(self, config_path: Path) -> list[str]:
        return [
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            f"--web.external-url={self.url}",  # alerts' generatorURL (else the machine's hostname)
        ]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; returns ``data.result`` (``[{metric: {...}, value: [ts, "v"]}]``)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        return http_json(url)["data"]["result"]

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing): ``[{labels, annotations, state, activeAt, value}]``."""
        return http_json(f"{self.url}/api/v1/alerts")["data"]["alerts"]


class AlertmanagerServer(_Server):
    """Alertmanager with ``config`` (see :func:`finsentry.alerts.configs.alertmanager_config`), no clustering."""

    binary_names = ("alertmanager", "prometheus-alertmanager")
    config_name = "alertmanager.yml"

    def _args(self, config_path: Path) -> list[str]:
        return [
            f"--config.file={config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            f"--web.external-url={self.url}",  # links in notifications (else the machine's hostname)
            "--cluster.listen-address=",  # no gossip port: a single instance
        ]

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """POST alerts to ``/api/v2/alerts`` (``[{labels, annotations, startsAt?, endsAt?}]``)."""
        http_json(f"{self.url}/api/v2/alerts", alerts)

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts it holds: ``[{labels, status: {state, inhibitedBy, silencedBy}, ...}]``."""
        return http_json(f"{self.url}/api/v2/alerts")
