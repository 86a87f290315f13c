"""alerts/alertmanager.yml passes ``amtool check-config`` (also with its commented Slack and email receivers
enabled), routes alerts as documented, and a real Alertmanager applies its inhibition rules."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from finsentry.alerts.configs import ALERTMANAGER_CONFIG, alertmanager_config, load_yaml
from finsentry.alerts.processes import AlertmanagerServer, amtool


def test_alertmanager_config_passes_amtool() -> None:
    result = amtool("check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 inhibit rules" in result.stdout
    assert "1 receivers" in result.stdout


def test_commented_slack_and_email_examples_are_valid(tmp_path: Path) -> None:
    text = ALERTMANAGER_CONFIG.read_text()
    uncommented = re.sub(r"(?m)^  # ?(- name|  )", r"  \1", text)
    assert uncommented.count("- name:") == 3
    path = tmp_path / "alertmanager.yml"
    path.write_text(uncommented)
    result = amtool("check-config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 receivers" in result.stdout
    receivers = {r["name"]: r for r in load_yaml(path)["receivers"]}
    assert set(receivers) == {"finsentry-relay", "slack-markets", "email-oncall"}
    assert receivers["slack-markets"]["slack_configs"][0]["send_resolved"] is True
    # the spike alerts' peak and current figures are in their own annotation (alerts/alerting_rules.yml): a
    # receiver without the relay's spike record shows it after the description's start figures
    text = receivers["slack-markets"]["slack_configs"][0]["text"]
    assert "{{ .Annotations.description }}{{ with .Annotations.peak_and_now }} {{ . }}{{ end }}" in text, text


def test_grouping_and_relay_receiver() -> None:
    cfg = load_yaml(ALERTMANAGER_CONFIG)
    assert cfg["route"]["group_by"] == ["alertname", "key"]
    hook = cfg["receivers"][0]["webhook_configs"][0]
    assert hook["url"].endswith("/webhook") and hook["send_resolved"] is True
    assert hook["http_config"]["authorization"]["type"] == "Bearer"
    assert "credentials_file" in hook["http_config"]["authorization"]


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ("alertname=NegativeSentimentSpike key=topic:earnings", "finsentry-relay"),
        ("alertname=FinsentryScorerDown instance=scorer-0:8500", "finsentry-relay"),
    ],
)
def test_amtool_routes(labels: str, receiver: str) -> None:
    result = amtool("config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels.split())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    work = tmp_path_factory.mktemp("am")
    token = work / "relay-token"
    token.write_text("unused")
    # the relay URL points at a closed port: these tests only read Alertmanager's own state
    cfg = alertmanager_config(relay_url="http://127.0.0.1:9/webhook", credentials_file=token, group_wait_s=60)
    with AlertmanagerServer(cfg, work) as server:
        yield server


def _alert(name: str, **labels: str) -> dict:
    return {"labels": {"alertname": name, **labels}, "annotations": {"summary": name}}


def _states(am: AlertmanagerServer, names: set[str], timeout_s: float = 10.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = {a["labels"]["alertname"]: a["status"] for a in am.alerts() if a["labels"]["alertname"] in names}
        if set(found) == names and any(s["state"] == "suppressed" for s in found.values()):
            return found
        if time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_market_spike_inhibits_ticker_spikes_not_topic_spikes(alertmanager: AlertmanagerServer) -> None:
    alertmanager.post_alerts(
        [
            _alert("MarketNegativeSpike", key="all", severity="critical"),
            _alert("TickerNegativeSpike", key="ticker:AAPL", ticker="AAPL", severity="warning"),
            _alert("NegativeSentimentSpike", key="topic:earnings", topic="earnings", severity="warning"),
        ]
    )
    states = _states(alertmanager, {"MarketNegativeSpike", "TickerNegativeSpike", "NegativeSentimentSpike"})
    assert states["TickerNegativeSpike"]["state"] == "suppressed"
    assert states["TickerNegativeSpike"]["inhibitedBy"]
    assert states["MarketNegativeSpike"]["state"] == "active"
    assert states["NegativeSentimentSpike"]["state"] == "active"


def test_pipeline_down_inhibits_spike_alerts(tmp_path: Path) -> None:
    token = tmp_path / "relay-token"
    token.write_text("unused")
    cfg = alertmanager_config(relay_url="http://127.0.0.1:9/webhook", credentials_file=token, group_wait_s=60)
    with AlertmanagerServer(cfg, tmp_path) as am:
        am.post_alerts(
            [
                _alert("FinsentryAggregatorDown", instance="agg-0:8600", severity="critical"),
                _alert("NegativeSentimentSpike", key="topic:earnings", topic="earnings", severity="warning"),
                _alert("FinsentryDeadLettersHigh", severity="warning"),
            ]
        )
        states = _states(am, {"FinsentryAggregatorDown", "NegativeSentimentSpike", "FinsentryDeadLettersHigh"})
    assert states["NegativeSentimentSpike"]["state"] == "suppressed"
    assert states["FinsentryAggregatorDown"]["state"] == "active"
    assert states["FinsentryDeadLettersHigh"]["state"] == "active"
