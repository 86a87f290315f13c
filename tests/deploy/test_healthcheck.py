"""deploy/docker/healthcheck.py against a real ``finsentry relay`` process on 127.0.0.1."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deploy_testkit import DOCKER, only_env

from finsentry.ingest.broker import free_port


def _load():
    spec = importlib.util.spec_from_file_location("finsentry_healthcheck", DOCKER / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = _load()


def test_verb_is_found_after_global_options_in_proc_cmdlines(tmp_path: Path):
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "cmdline").write_bytes(b"/usr/bin/tini\0--\0/opt/venv/bin/python\0")
    (tmp_path / "7").mkdir()
    argv = ["/opt/venv/bin/python", "/opt/venv/bin/finsentry", "--config", "/etc/f.yml", "aggregator"]
    (tmp_path / "7" / "cmdline").write_bytes("\0".join(argv).encode() + b"\0")
    assert healthcheck.running_verb(tmp_path) == "aggregator"
    (tmp_path / "7" / "cmdline").write_bytes(b"/bin/sh\0")
    assert healthcheck.running_verb(tmp_path) is None


def test_urls_follow_the_settings():
    env = {"FINSENTRY_INGEST__SCORER__METRICS_PORT": "9901", "FINSENTRY_MONITOR__HTTP_PORT": "9902"}
    with only_env(env):
        assert healthcheck.health_url("scorer") == "http://127.0.0.1:9901/metrics"
        assert healthcheck.health_url("aggregator") == "http://127.0.0.1:9902/api/health"
        assert healthcheck.health_url("relay") == "http://127.0.0.1:8700/healthz"
        assert healthcheck.health_url("replay") is None


def test_verbs_without_an_endpoint_are_healthy_while_running(capsys):
    assert healthcheck.main(["--verb", "replay"]) == 0
    assert "no HTTP endpoint" in capsys.readouterr().out


@pytest.fixture
def relay_port() -> int:
    return free_port()


def test_relay_is_healthy_while_it_serves_and_unhealthy_after_it_stops(relay_port: int, capsys):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINSENTRY_")}
    env |= {"FINSENTRY_ALERTS__RELAY_TOKEN": "test-token", "FINSENTRY_ALERTS__RELAY_PORT": str(relay_port)}
    relay = subprocess.Popen(
        [str(Path(sys.executable).parent / "finsentry"), "relay"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with only_env({"FINSENTRY_ALERTS__RELAY_PORT": str(relay_port)}):
            deadline = time.monotonic() + 30
            status = 1
            while time.monotonic() < deadline and relay.poll() is None:
                status = healthcheck.main(["--verb", "relay", "--timeout", "1"])
                if status == 0:
                    break
                time.sleep(0.2)
            assert status == 0, relay.stderr.read().decode() if relay.poll() is not None else "relay never answered"
            assert "/healthz: HTTP 200" in capsys.readouterr().out
            relay.terminate()
            relay.wait(timeout=20)
            assert healthcheck.main(["--verb", "relay", "--timeout", "1"]) == 1
    finally:
        if relay.poll() is None:
            relay.kill()
            relay.wait(timeout=10)
