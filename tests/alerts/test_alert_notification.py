"""Pure logic of the alerts room: payload validation, notification rendering, backoff, config builders, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alerts_testkit import SPIKE_EVENT, webhook_payload
from typer.testing import CliRunner

from finsentry.alerts.configs import (
    ALERTING_RULES,
    alertmanager_config,
    duration,
    prometheus_config,
    rules_with_for,
)
from finsentry.alerts.delivery import backoff_delay
from finsentry.alerts.evidence import Evidence, spike_evidence
from finsentry.alerts.notification import build_notification
from finsentry.alerts.payload import InvalidPayload, parse_payload
from finsentry.alerts.relay import RelayConfigError, load_token
from finsentry.alerts.settings import AlertsSettings
from finsentry.alerts.spike_cache import CachedSpike
from finsentry.common.textfiles import MAX_SECRET_BYTES
from finsentry.monitor.spikes import SpikeEvent
from finsentry.settings import SettingsError, load_settings


def _cached(spike: dict) -> CachedSpike:
    return CachedSpike(SpikeEvent.from_dict(spike), list(spike["evidence"]))


def _evidence() -> dict[str, Evidence]:
    return {"topic:earnings": spike_evidence("topic:earnings", _cached(SPIKE_EVENT))}


def test_parse_payload_reads_alertmanager_fields() -> None:
    p = parse_payload(json.dumps(webhook_payload(n_alerts=2)).encode())
    assert p.status == "firing" and len(p.alerts) == 2
    assert p.alerts[0].name == "NegativeSentimentSpike"
    assert p.alerts[0].labels["key"] == "topic:earnings"


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"", "not UTF-8 JSON"), (b'"x"', "JSON object"), (b'{"version": "4"}', "groupKey")],
)
def test_parse_payload_errors_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        parse_payload(body)


def test_evidence_sorted_most_negative_first_and_capped() -> None:
    many = dict(SPIKE_EVENT)
    many["evidence"] = [dict(SPIKE_EVENT["evidence"][0], id=str(i), sentiment_score=-i / 10) for i in range(8)]
    ev = spike_evidence("topic:earnings", _cached(many), limit=3)
    assert [h.id for h in ev.headlines] == ["7", "6", "5"]
    assert spike_evidence("topic:other", None).error
    twice = dict(SPIKE_EVENT, evidence=SPIKE_EVENT["evidence"] * 2)  # at-least-once copies: each story once
    assert [h.id for h in spike_evidence("topic:earnings", _cached(twice)).headlines] == ["n1", "n2"]


def test_firing_text_lists_alert_then_headlines() -> None:
    n = build_notification(parse_payload(json.dumps(webhook_payload()).encode()), _evidence())
    lines = n.text.splitlines()
    assert lines[0] == "[FIRING:1] NegativeSentimentSpike topic:earnings"
    assert lines[2] == "FIRING: Negative news spike in topic earnings (warning, since 2024-05-01 12:01:30 UTC)"
    i = lines.index("Spike topic:earnings@2024-05-01T12:01:00Z (300 s window, share test):")
    assert lines[i + 1] == "  start 2024-05-01 12:01 UTC: z=6.4  negative 18/25 (72%, baseline 21%)"
    assert lines[i + 2] == "  peak  2024-05-01 12:01 UTC: z=6.4  negative 18/25 (72%)"
    i = lines.index("Most negative headlines for topic:earnings (the stories that started it):")
    assert lines[i + 1] == "  1. [-0.97] Globex shares slump after profit warning"
    assert lines[i + 2] == "     2024-05-01T12:00:05+00:00  https://news.example.com/globex"
    assert lines[i + 3] == "  2. [-0.91] Acme misses Q1 estimates, cuts guidance"


def test_prometheus_peak_and_now_shown_only_without_the_spike_record() -> None:
    """One set of figures per notification: Prometheus's peak / now (evaluated when the alert fired) is printed
    only where the relay lacks the spike record, whose timed start / peak / now lines are shown instead."""
    payload = webhook_payload()
    spike_id = SPIKE_EVENT["spike_id"]
    payload["alerts"][0]["labels"]["spike_id"] = spike_id
    payload["alerts"][0]["annotations"]["peak_and_now"] = "Peak z 7.0 with 20 of 30 negative (67%). Now ...: z 2.9"
    parsed = parse_payload(json.dumps(payload).encode())
    with_record = build_notification(parsed, _evidence())
    assert "Peak z 7.0" not in with_record.text and "Peak z 7.0" not in json.dumps(with_record.slack_message())
    assert "  peak  2024-05-01 12:01 UTC: z=6.4  negative 18/25 (72%)" in with_record.text, with_record.text
    assert with_record.to_json()["alerts"][0]["annotations"]["peak_and_now"].startswith("Peak z 7.0")
    unseen = build_notification(parsed, {"topic:earnings": spike_evidence("topic:earnings", None)})
    line = "  As Prometheus last evaluated: Peak z 7.0 with 20 of 30 negative (67%). Now ...: z 2.9"
    assert line in unseen.text.splitlines(), unseen.text
    assert "As Prometheus last evaluated: Peak z 7.0" in json.dumps(unseen.slack_message())
    other = dict(SPIKE_EVENT, spike_id="topic:earnings@2024-04-01T00:00:00Z")  # an older spike of the same key
    stale = build_notification(parsed, {"topic:earnings": spike_evidence("topic:earnings", _cached(other))})
    assert line in stale.text.splitlines(), stale.text


def test_runbook_base_url_prefixes_relative_links() -> None:
    n = build_notification(parse_payload(json.dumps(webhook_payload()).encode()), {}, "https://git.example.com/r/")
    assert (
        n.to_json()["alerts"][0]["runbook_url"] == "https://git.example.com/r/docs/runbooks/NegativeSentimentSpike.md"
    )
    assert "<https://git.example.com/r/docs/runbooks/NegativeSentimentSpike.md|runbook>" in json.dumps(
        n.slack_message()
    )


def test_slack_text_is_escaped() -> None:
    payload = webhook_payload()
    payload["alerts"][0]["annotations"]["summary"] = "M&A <spike>"
    n = build_notification(parse_payload(json.dumps(payload).encode()), {})
    assert "*M&amp;A &lt;spike&gt;*" in n.slack_message()["blocks"][1]["text"]["text"]


def test_mixed_group_is_firing_and_lists_resolved_after_firing() -> None:
    payload = webhook_payload(n_alerts=2)
    payload["alerts"][0]["status"] = "resolved"
    payload["alerts"][0]["endsAt"] = "2024-05-01T12:05:00Z"
    n = build_notification(parse_payload(json.dumps(payload).encode()), {})
    assert n.title == "[FIRING:1] NegativeSentimentSpike topic:earnings"
    assert n.text.index("FIRING: ") < n.text.index("RESOLVED: ")


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_delay(n, 0.5, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_duration_strings() -> None:
    assert [duration(1), duration(0.25), duration(60), duration(1.5)] == ["1s", "250ms", "60s", "1500ms"]
    with pytest.raises(ValueError):
        duration(0)


def test_prometheus_config_builder_keeps_jobs_and_rules(tmp_path: Path) -> None:
    cfg = prometheus_config(
        targets={"finsentry-aggregator": ["127.0.0.1:1234"]},
        alertmanagers=["127.0.0.1:9999"],
        scrape_interval_s=1,
        evaluation_interval_s=1,
    )
    assert cfg["global"] == {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in cfg["scrape_configs"]}
    assert jobs["finsentry-aggregator"] == ["127.0.0.1:1234"]
    assert jobs["finsentry-scorer"] == ["127.0.0.1:8601"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in cfg["rule_files"])
    with pytest.raises(ValueError, match="no scrape job 'nope'"):
        prometheus_config(targets={"nope": []})


def test_rules_with_for_changes_only_for() -> None:
    fast = rules_with_for(ALERTING_RULES, 2)
    rules = [r for g in fast["groups"] for r in g["rules"]]
    assert {r["for"] for r in rules} == {"2s"}
    original = [r for g in rules_with_for(ALERTING_RULES, 60)["groups"] for r in g["rules"]]
    assert [r["expr"] for r in rules] == [r["expr"] for r in original]


def test_alertmanager_config_builder_points_at_relay(tmp_path: Path) -> None:
    cfg = alertmanager_config(
        relay_url="http://127.0.0.1:5/webhook", credentials_file=tmp_path / "t", group_wait_s=1, group_interval_s=1
    )
    hook = cfg["receivers"][0]["webhook_configs"][0]
    assert hook["url"] == "http://127.0.0.1:5/webhook"
    assert hook["http_config"]["authorization"]["credentials_file"] == str(tmp_path / "t")
    assert (cfg["route"]["group_wait"], cfg["route"]["group_interval"]) == ("1s", "1s")


def test_token_sources(tmp_path: Path) -> None:
    assert load_token(AlertsSettings(relay_token=" abc \n")) == "abc"
    (tmp_path / "tok").write_text("from-file\n")
    assert load_token(AlertsSettings(relay_token_file=tmp_path / "tok")) == "from-file"
    with pytest.raises(RelayConfigError, match="alerts.relay_token_file"):
        load_token(AlertsSettings())
    with pytest.raises(RelayConfigError, match="cannot read"):
        load_token(AlertsSettings(relay_token_file=tmp_path / "missing"))
    with pytest.raises(RelayConfigError, match="empty"):
        load_token(AlertsSettings(relay_token="  "))


def test_a_token_file_that_is_a_device_too_large_or_not_utf8_stops_with_one_line(tmp_path: Path) -> None:
    """Issue 15, finding 9: a token file of /dev/zero took 9.5 GB; a non-UTF-8 one gave a 45-line traceback."""
    with pytest.raises(RelayConfigError) as err:
        load_token(AlertsSettings(relay_token_file=Path("/dev/zero")))
    assert str(err.value) == "alerts.relay_token_file /dev/zero is a character device, not a regular file"
    token = tmp_path / "tok"
    token.write_bytes(b"tok\xffen\n")
    with pytest.raises(RelayConfigError) as err:
        load_token(AlertsSettings(relay_token_file=token))
    assert str(err.value) == f"alerts.relay_token_file {token} is not UTF-8 text (byte 0xff at offset 3)"
    token.write_bytes(b"t" * (MAX_SECRET_BYTES + 1))
    with pytest.raises(RelayConfigError, match=f"larger than the limit of {MAX_SECRET_BYTES} bytes"):
        load_token(AlertsSettings(relay_token_file=token))


def test_sinks_from_env_json_and_bad_values_name_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENTRY_ALERTS__SINKS", '[{"type": "webhook", "url": "http://127.0.0.1:1/x"}]')
    monkeypatch.setenv("FINSENTRY_ALERTS__SINK_BACKOFF_INITIAL_S", "0.5")
    s = load_settings()
    assert s.alerts.sinks[0].type == "webhook" and s.alerts.sink_backoff_initial_s == 0.5
    monkeypatch.setenv("FINSENTRY_ALERTS__SINKS", '[{"type": "pager"}]')
    with pytest.raises(SettingsError, match="alerts.sinks"):
        load_settings()


def test_cli_relay_without_token_exits_2_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from finsentry.cli import app

    monkeypatch.delenv("FINSENTRY_ALERTS__RELAY_TOKEN", raising=False)
    result = CliRunner().invoke(app, ["relay", "--port", "0"])
    assert result.exit_code == 2
    assert "FINSENTRY_ALERTS__RELAY_TOKEN" in result.output
