"""Ingest settings: env names, validation messages that name the key."""

from __future__ import annotations

import re

import pytest

from finsentry.ingest.settings import parse_bootstrap_servers
from finsentry.settings import SettingsError, load_settings


def test_env_sets_nested_scorer_and_replay_fields(monkeypatch):
    monkeypatch.setenv("FINSENTRY_INGEST__SCORER__MAX_BATCH_ITEMS", "16")
    monkeypatch.setenv("FINSENTRY_INGEST__SCORER__ALLOWED_LANGS", '["en", "de"]')
    monkeypatch.setenv("FINSENTRY_INGEST__REPLAY__RATE", "25.5")
    ingest = load_settings().ingest
    assert ingest.scorer.max_batch_items == 16
    assert ingest.scorer.allowed_langs == ["en", "de"]
    assert ingest.replay.rate == 25.5
    assert ingest.scorer.metrics_host == "127.0.0.1" and ingest.scorer.metrics_port == 8601


def test_bad_values_name_the_key(monkeypatch):
    monkeypatch.setenv("FINSENTRY_INGEST__SCORER__MAX_BATCH_ITEMS", "0")
    with pytest.raises(SettingsError, match="ingest.scorer.max_batch_items"):
        load_settings()


def test_speedup_and_rate_exclude_each_other():
    with pytest.raises(SettingsError, match=r"ingest\.replay.*either speedup or rate"):
        load_settings(ingest={"replay": {"speedup": 10, "rate": 5}})


def test_secrets_stay_out_of_repr():
    s = load_settings(ingest={"kafka": {"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "hunter2"}})
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.ingest)


# --- bootstrap servers are validated where settings load, for every entry point -------------------------------


def test_good_bootstrap_lists_parse_and_are_stored_without_blanks():
    assert parse_bootstrap_servers("kafka-0.kafka.svc:9092, 10.0.0.7:9093 ,[::1]:19092,kafka_1:1") == [
        ("kafka-0.kafka.svc", 9092),
        ("10.0.0.7", 9093),
        ("::1", 19092),
        ("kafka_1", 1),
    ]
    kafka = load_settings(ingest={"kafka": {"bootstrap_servers": " a:1 , b.c:65535"}}).ingest.kafka
    assert kafka.bootstrap_servers == "a:1,b.c:65535"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("not a host:::", "entry 'not a host:::' is not host:port: 'not a host::' is not a host name"),
        ("", "no bootstrap server given"),
        (" , ", "no bootstrap server given"),
        ("kafka:9092,", "'kafka:9092,' has an empty entry"),
        ("kafka", "entry 'kafka' has no port"),
        ("kafka:0", "port '0' is not an integer 1..65535"),
        ("kafka:65536", "port '65536' is not an integer 1..65535"),
        ("kafka:+1", "port '+1' is not an integer 1..65535"),
        ("kafka:", "port '' is not an integer 1..65535"),
        (":9092", "'' is not a host name or IP address"),
        ("::1:9092", "an IPv6 address goes in brackets with a port, like [::1]:9092"),
        ("[::1]", "an IPv6 entry needs a port after the brackets"),
        ("[kafka]:9092", "'kafka' is not an IPv6 address"),
        ("PLAINTEXT://kafka:9092", "'PLAINTEXT://kafka' is not a host name"),
    ],
)
def test_bad_bootstrap_lists_stop_with_a_message_naming_the_key(value, why):
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_bootstrap_servers(value)
    with pytest.raises(SettingsError) as err:
        load_settings(ingest={"kafka": {"bootstrap_servers": value}})
    text = str(err.value)
    assert "ingest.kafka.bootstrap_servers (env FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS)" in text and why in text


@pytest.mark.parametrize("verb", ["scorer", "aggregator"])
@pytest.mark.parametrize("value", ["not a host:::", ""])
def test_cli_bootstrap_servers_option_exits_2_with_the_settings_message(verb, value):
    from typer.testing import CliRunner

    from finsentry.cli import app

    result = CliRunner().invoke(app, [verb, "--bootstrap-servers", value])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # no traceback
    assert "error: invalid settings" in result.output
    assert "ingest.kafka.bootstrap_servers (env FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS): " in result.output


@pytest.mark.parametrize(
    ("value", "why"), [("not a host:::", "is not a host name or IP address"), ("", "no bootstrap server given")]
)
def test_run_bootstrap_servers_option_is_a_run_error_with_exit_2(tmp_path, value, why):
    from finsentry.run_options import RunError, RunOptions
    from finsentry.run_pipeline import Pipeline

    pipeline = Pipeline(load_settings(), RunOptions(bootstrap_servers=value, workdir=tmp_path), None, None)
    with pytest.raises(RunError) as err:
        pipeline._start_kafka()  # before any connection or embedded broker
    assert err.value.exit_code == 2
    assert str(err.value).startswith(f"--bootstrap-servers {value!r}: ") and why in str(err.value)
    assert "kafka" not in pipeline.services


# --- consumer timings (issue 15, finding 10) ------------------------------------------------------------------


def test_a_poll_interval_a_full_batch_can_outlast_is_refused_with_the_sum():
    """Before: max_poll_interval_ms below the slowest batch was accepted, and every slow batch evicted the scorer."""
    with pytest.raises(SettingsError) as err:  # 64 items x 100 ms + 30 s = 36400 ms
        load_settings(ingest={"scorer": {"max_poll_interval_ms": 36_400}})
    text = str(err.value)
    assert "\n  ingest (env FINSENTRY_INGEST): " in text and text.count("\n") == 1
    assert (
        "scorer.max_poll_interval_ms (36400) must exceed the longest time the scorer may spend between two polls,"
        " 36400 ms = scorer.max_batch_items (64) x 100 ms (scoring budget per item) + scorer.produce_timeout_s (30 s)"
    ) in text
    assert (
        load_settings(ingest={"scorer": {"max_poll_interval_ms": 36_401}}).ingest.scorer.max_poll_interval_ms == 36_401
    )
    small = {"max_poll_interval_ms": 2000, "max_batch_items": 8, "produce_timeout_s": 1.0}  # 8 x 100 ms + 1 s = 1.8 s
    assert load_settings(ingest={"scorer": small}).ingest.scorer.max_batch_items == 8


def test_a_heartbeat_longer_than_a_third_of_the_session_is_refused(monkeypatch):
    monkeypatch.setenv("FINSENTRY_INGEST__KAFKA__SESSION_TIMEOUT_MS", "6000")
    monkeypatch.setenv("FINSENTRY_INGEST__KAFKA__HEARTBEAT_INTERVAL_MS", "2001")
    with pytest.raises(SettingsError, match=re.escape("heartbeat_interval_ms (2001) must be at most a third of")):
        load_settings()
    monkeypatch.setenv("FINSENTRY_INGEST__KAFKA__HEARTBEAT_INTERVAL_MS", "2000")
    assert load_settings().ingest.kafka.heartbeat_interval_ms == 2000


def test_the_shipped_consumer_timings_pass_their_checks():
    """The defaults, the test kit's short sessions and the Kubernetes config map's values are all accepted."""
    load_settings()
    load_settings(ingest={"kafka": {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300}})
    load_settings(ingest={"kafka": {"session_timeout_ms": 10_000, "heartbeat_interval_ms": 3000}})
    load_settings(ingest={"scorer": {"max_batch_items": 256}})  # deploy/docker/gpu.Dockerfile
