"""Settings: env overrides YAML overrides defaults; a wrong value stops with a message naming the key."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from finsentry.settings import SettingsError, load_settings


def test_yaml_then_env_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ingest:\n  kafka:\n    bootstrap_servers: yaml:9092\n    client_id: from-yaml\n")
    s = load_settings(cfg)
    assert s.ingest.kafka.bootstrap_servers == "yaml:9092"
    monkeypatch.setenv("FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVERS", "env:9093")
    s = load_settings(cfg)
    assert s.ingest.kafka.bootstrap_servers == "env:9093"
    assert s.ingest.kafka.client_id == "from-yaml"


def test_bad_values_name_the_key_and_env_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("FINSENTRY_MONITOR__HTTP_PORT", "eighty")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "monitor.http_port" in str(err.value) and "FINSENTRY_MONITOR__HTTP_PORT" in str(err.value)
    monkeypatch.delenv("FINSENTRY_MONITOR__HTTP_PORT")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ingest:\n  kafka:\n    security_protocol: TLS\n")
    with pytest.raises(SettingsError, match="ingest.kafka.security_protocol"):
        load_settings(cfg)
    cfg.write_text("monitor:\n  no_such_key: 1\n")
    with pytest.raises(SettingsError, match="monitor.no_such_key"):
        load_settings(cfg)
    cfg.write_text("- just\n- a list\n")
    with pytest.raises(SettingsError, match="must be a mapping"):
        load_settings(cfg)
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(tmp_path / "missing.yaml")


def test_cli_reports_bad_settings_with_exit_code_2_and_masks_secrets(monkeypatch):
    from finsentry.cli import app

    runner = CliRunner()
    monkeypatch.setenv("FINSENTRY_INGEST__KAFKA__SASL_PASSWORD", "hunter2")
    shown = runner.invoke(app, ["config", "show"])
    assert shown.exit_code == 0 and "hunter2" not in shown.output and "**********" in shown.output
    monkeypatch.setenv("FINSENTRY_MODEL__BATCH_SIZE", "0")
    bad = runner.invoke(app, ["config", "show"])
    assert bad.exit_code == 2 and "model.batch_size" in bad.output


def test_error_messages_never_echo_secret_values(monkeypatch):
    monkeypatch.setenv("FINSENTRY_INGEST__KAFKA__SASL_PASSWORD", "x")
    monkeypatch.setenv("FINSENTRY_INGEST__KAFKA__SASL_USERNAME", "[1, 2]")
    monkeypatch.setenv("FINSENTRY_ALERTS__NO_SUCH", "hunter2SECRET")
    with pytest.raises(SettingsError) as err:
        load_settings(alerts={"relay_token": "hunter2SECRET", "bogus": 1})
    assert "hunter2SECRET" not in str(err.value)
