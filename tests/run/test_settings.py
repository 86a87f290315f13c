"""Settings: env overrides YAML overrides defaults; a wrong value stops with a message naming the key."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finsentry.common.textfiles import MAX_CONFIG_BYTES
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


@pytest.mark.parametrize(
    ("env", "key", "value"),
    [
        ("FINSENTRY_MONITOR__SPIKE__START_Z", "monitor.spike.start_z", "inf"),  # a spike could never start
        ("FINSENTRY_INGEST__SCORER__PRODUCE_TIMEOUT_S", "ingest.scorer.produce_timeout_s", "nan"),
        ("FINSENTRY_ALERTS__SINK_BACKOFF_MAX_S", "alerts.sink_backoff_max_s", "Infinity"),
        ("FINSENTRY_MODEL__RETRAIN__RECENT_DAYS", "model.retrain.recent_days", "-inf"),
    ],
)
def test_infinite_and_nan_numbers_are_refused(monkeypatch, env, key, value):
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert key in str(err.value) and env in str(err.value) and "finite number" in str(err.value)


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


def test_unknown_env_section_stops_naming_the_variable_and_the_sections(monkeypatch):
    monkeypatch.setenv("FINSENTRY_BOGUS__X", "1")
    with pytest.raises(SettingsError) as err:
        load_settings()
    text = str(err.value)
    assert "FINSENTRY_BOGUS__X: no settings section bogus" in text
    assert "SECTION one of ingest, model, monitor, alerts" in text
    assert "FINSENTRY_CONFIG, FINSENTRY_SCREENSHOT, FINSENTRY_TEST_MODEL_DIR" in text
    monkeypatch.delenv("FINSENTRY_BOGUS__X")
    monkeypatch.setenv("FINSENTRY_MONITOR_HTTP_PORT", "9000")  # one underscore: no section, a hint
    with pytest.raises(SettingsError, match=r"did you mean FINSENTRY_MONITOR__HTTP_PORT\?"):
        load_settings()
    monkeypatch.delenv("FINSENTRY_MONITOR_HTTP_PORT")
    monkeypatch.setenv("finsentry_bogus", "x")  # pydantic-settings reads names case-insensitively
    with pytest.raises(SettingsError, match="finsentry_bogus: no settings section bogus"):
        load_settings()


def test_variables_read_outside_the_settings_keep_working(monkeypatch, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("monitor:\n  http_port: 8123\n")
    monkeypatch.setenv("FINSENTRY_CONFIG", str(cfg))
    monkeypatch.setenv("FINSENTRY_TEST_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("FINSENTRY_SCREENSHOT", str(tmp_path / "shot.png"))
    monkeypatch.setenv("FINSENTRY_MONITOR__HTTP_HOST", "0.0.0.0")
    s = load_settings()
    assert (s.monitor.http_port, s.monitor.http_host) == (8123, "0.0.0.0")


def test_every_finsentry_variable_the_repository_reads_is_a_setting_or_allowed():
    from finsentry.common.paths import REPO_ROOT
    from finsentry.settings import unknown_env_variables

    reads = re.compile(r"""(?:environ\.get\(|environ\[|getenv\()\s*["'](FINSENTRY_[A-Z0-9_]+)""")
    found: set[str] = set()
    for folder in (
        "finsentry",
        "common",
        "ingest",
        "model",
        "monitor",
        "alerts",
        "deploy",
        "scripts",
        "benchmarks",
        "tests",
    ):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            found.update(reads.findall(path.read_text(encoding="utf-8", errors="replace")))
    assert {"FINSENTRY_CONFIG", "FINSENTRY_TEST_MODEL_DIR", "FINSENTRY_SCREENSHOT"} <= found
    assert unknown_env_variables(dict.fromkeys(found, "")) == []


def test_unknown_keys_list_the_valid_keys_of_their_section(monkeypatch):
    monkeypatch.setenv("FINSENTRY_MONITOR__NOT_A_SETTING", "1")
    with pytest.raises(SettingsError) as err:
        load_settings()
    line = next(x for x in str(err.value).splitlines() if "not_a_setting" in x)
    assert line.startswith("  monitor.not_a_setting (env FINSENTRY_MONITOR__NOT_A_SETTING): unknown key; ")
    assert "valid keys of monitor: http_host, http_port, group_id, bucket_seconds" in line
    monkeypatch.delenv("FINSENTRY_MONITOR__NOT_A_SETTING")
    monkeypatch.setenv("FINSENTRY_INGEST__KAFKA__BOOTSTRAP_SERVER", "x:9092")  # misspelt
    with pytest.raises(SettingsError, match="valid keys of ingest.kafka: bootstrap_servers, client_id"):
        load_settings()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x7fELF\x02\x01\x01\x00\xff\xfe\x00binary", r"is not UTF-8 text \(byte 0xff at offset 8\)"),
        (b"monitor:\n  http_port: 1\x00\n", r"is not valid YAML: unacceptable character #x0000 at offset 23"),
        (b"monitor:\n  http_port: [1\n", r"is not valid YAML: expected ',' or '\]', but got '<stream end>' at line 3"),
        (b"- just\n- a list\n", r"must be a mapping of sections \(ingest, model, monitor, alerts\), not a list"),
        (b"just some text\n", r"must be a mapping of sections .*, not text"),
        (b"42\n", r"must be a mapping of sections .*, not a number"),
        (b"1: x\nmonitor: {}\n", r"section names must be text, got 1; sections: ingest, model, monitor, alerts"),
    ],
)
def test_a_config_file_that_is_not_a_yaml_mapping_stops_naming_the_file(tmp_path, content, expected):
    from finsentry.cli import app

    cfg = tmp_path / "settings.yaml"
    cfg.write_bytes(content)
    with pytest.raises(SettingsError, match=expected) as err:
        load_settings(cfg)
    assert str(cfg) in str(err.value) and "\n" not in str(err.value)
    done = CliRunner().invoke(app, ["--config", str(cfg), "config", "show"])
    assert done.exit_code == 2 and isinstance(done.exception, SystemExit)
    assert done.output.startswith(f"error: config file {cfg}") and "Traceback" not in done.output


def test_cli_stops_on_an_unknown_variable_with_exit_code_2(monkeypatch):
    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_BOGUS__X", "1")
    done = CliRunner().invoke(app, ["config", "show"])
    assert done.exit_code == 2 and isinstance(done.exception, SystemExit)
    assert done.output.splitlines()[:2] == [
        "error: unknown FINSENTRY_* environment variables; unset or rename them:",
        "  FINSENTRY_BOGUS__X: no settings section bogus",
    ]


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        (
            "FINSENTRY_MONITOR__WINDOWS_SECONDS",
            "[300,",
            "  monitor.windows_seconds (env FINSENTRY_MONITOR__WINDOWS_SECONDS): not JSON (Expecting value); write a "
            "JSON list such as '[300, 3600, 86400]' or comma-separated values such as 300,3600",
        ),
        (
            "FINSENTRY_ALERTS__SINKS",
            "stdout",
            "  alerts.sinks (env FINSENTRY_ALERTS__SINKS): not JSON (Expecting value); write JSON such as "
            '\'[{"name": null, "type": "stdout"}]\'',
        ),
        (
            "FINSENTRY_MONITOR",
            "x",
            "  monitor (env FINSENTRY_MONITOR): not JSON (Expecting value); monitor is a group of settings: set each "
            "one as FINSENTRY_MONITOR__<KEY> (keys: http_host, http_port,",
        ),
        (
            "FINSENTRY_INGEST__KAFKA",
            "str",
            "  ingest.kafka (env FINSENTRY_INGEST__KAFKA): not JSON (Expecting value); ingest.kafka is a group of "
            "settings: set each one as FINSENTRY_INGEST__KAFKA__<KEY> (keys: bootstrap_servers, client_id,",
        ),
    ],
)
def test_env_values_that_are_not_json_name_the_variable_and_what_to_write(monkeypatch, name, value, line):
    from finsentry.cli import app

    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    lines = str(err.value).splitlines()
    assert lines[0] == "invalid settings; fix these environment variables:"
    assert len(lines) == 2 and lines[1].startswith(line)
    done = CliRunner().invoke(app, ["config", "show"])
    assert done.exit_code == 2 and isinstance(done.exception, SystemExit)
    assert done.output.splitlines()[1].startswith(line) and "Traceback" not in done.output


def test_lists_of_plain_values_also_take_comma_separated_env_values(monkeypatch):
    monkeypatch.setenv("FINSENTRY_INGEST__SCORER__ALLOWED_LANGS", "en")
    monkeypatch.setenv("FINSENTRY_MODEL__PROVIDERS", "CUDAExecutionProvider, CPUExecutionProvider")
    monkeypatch.setenv("FINSENTRY_MONITOR__WINDOWS_SECONDS", "300,3600")
    s = load_settings()
    assert s.ingest.scorer.allowed_langs == ["en"]
    assert s.model.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert s.monitor.windows_seconds == [300, 3600]
    monkeypatch.setenv("FINSENTRY_INGEST__SCORER__ALLOWED_LANGS", "en,de")
    assert load_settings().ingest.scorer.allowed_langs == ["en", "de"]
    monkeypatch.setenv("FINSENTRY_INGEST__SCORER__ALLOWED_LANGS", '["en", "fr"]')  # JSON still works
    assert load_settings().ingest.scorer.allowed_langs == ["en", "fr"]
    monkeypatch.setenv("FINSENTRY_MONITOR__WINDOWS_SECONDS", "300,an hour")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert (
        str(err.value)
        .splitlines()[1]
        .startswith(
            "  monitor.windows_seconds.1 (env FINSENTRY_MONITOR__WINDOWS_SECONDS): Input should be a valid integer"
        )
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"monitor: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nests lists or mappings deeper than 64 levels"),
        (b"monitor:\n  group_id: " + b"[" * 70 + b"]" * 70 + b"\n", "nested deeper than 64 levels"),
        (b"a: &a [*a]\n", "nested deeper than 64 levels"),  # a recursive alias
        (
            b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
            + b"".join(
                f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]\n".encode() for p, n in zip("abcdefgh", "bcdefghi", strict=True)
            )
            + b"monitor:\n  group_id: *i\n",
            "holds more than 100000 values (YAML aliases that repeat each other?)",
        ),
    ],
)
def test_a_config_file_nested_absurdly_deep_or_wide_stops_with_one_line(tmp_path, content, expected):
    from finsentry.cli import app

    cfg = tmp_path / "deep.yaml"
    cfg.write_bytes(content)
    with pytest.raises(SettingsError) as err:
        load_settings(cfg)
    assert str(err.value).startswith(f"config file {cfg}") and expected in str(err.value)
    assert "\n" not in str(err.value)
    done = CliRunner().invoke(app, ["--config", str(cfg), "config", "show"])
    assert done.exit_code == 2 and "Traceback" not in done.output


def test_bad_log_level_lists_the_levels():
    from finsentry.cli import app

    done = CliRunner().invoke(app, ["--log-level", "BOGUS", "config", "show"])
    assert done.exit_code == 2 and isinstance(done.exception, SystemExit)
    assert done.output.strip() == (
        "error: --log-level 'BOGUS' is not a log level; use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )
    assert CliRunner().invoke(app, ["--log-level", "warning", "config", "show"]).exit_code == 0


def test_intra_op_threads_has_an_upper_bound(monkeypatch):
    monkeypatch.setenv("FINSENTRY_MODEL__INTRA_OP_THREADS", "100000")
    with pytest.raises(SettingsError, match=r"model\.intra_op_threads .*less than or equal to 256"):
        load_settings()
    monkeypatch.setenv("FINSENTRY_MODEL__INTRA_OP_THREADS", "256")
    assert load_settings().model.intra_op_threads == 256


def test_config_show_masks_url_passwords_and_query_values(monkeypatch):
    from finsentry.cli import app

    monkeypatch.setenv("FINSENTRY_ALERTS__SINKS", '[{"type": "webhook", "url": "http://u:pw@h/x?token=abc"}]')
    monkeypatch.setenv("FINSENTRY_ALERTS__MONITOR_API_URL", "http://monitor:8600/?key=s3cret")
    done = CliRunner().invoke(app, ["config", "show"])
    assert done.exit_code == 0, done.output
    shown = json.loads(done.output)
    assert shown["alerts"]["sinks"][0]["url"] == "http://u:*****@h/x?token=*****"
    assert shown["alerts"]["monitor_api_url"] == "http://monitor:8600/?key=*****"
    assert "pw@" not in done.output and "abc" not in done.output and "s3cret" not in done.output
    assert shown["ingest"]["kafka"]["bootstrap_servers"] == "127.0.0.1:9092"  # not a URL: untouched


# Issue 15, finding 9: bounded config reads, unknown keys below a single setting.


def test_a_config_file_that_is_a_device_or_too_large_stops_with_one_line_naming_it(tmp_path):
    with pytest.raises(SettingsError) as err:
        load_settings(Path("/dev/zero"))
    assert str(err.value).startswith("config file /dev/zero is a character device, not a regular file; give a YAML")
    assert "\n" not in str(err.value)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(SettingsError, match=f"config file {big} is larger than the limit of 1048576 bytes"):
        load_settings(big)


def test_a_variable_below_a_single_setting_is_refused_even_when_the_setting_is_set(monkeypatch):
    monkeypatch.setenv("FINSENTRY_MONITOR__HTTP_PORT", "9000")
    monkeypatch.setenv("FINSENTRY_MONITOR__HTTP_PORT__X", "1")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert (
        "  FINSENTRY_MONITOR__HTTP_PORT__X: monitor.http_port is one setting, not a group; nothing can be set below"
        " it (set FINSENTRY_MONITOR__HTTP_PORT)\n"
    ) in str(err.value)
    monkeypatch.delenv("FINSENTRY_MONITOR__HTTP_PORT")
    with pytest.raises(SettingsError, match="FINSENTRY_MONITOR__HTTP_PORT__X: monitor.http_port is one setting"):
        load_settings()
    monkeypatch.delenv("FINSENTRY_MONITOR__HTTP_PORT__X")
    monkeypatch.setenv("FINSENTRY_INGEST__KAFKA__CLIENT_ID", "ok")  # a path through groups is still fine
    assert load_settings().ingest.kafka.client_id == "ok"


# Issue 16, item 3: the spike detector's group, old flat keys, the config file layered without a global.


def test_an_old_flat_key_in_the_file_or_the_environment_stops_with_one_line_naming_the_new_key(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("monitor:\n  spike_end_z: 1.0\n")
    with pytest.raises(SettingsError) as err:
        load_settings(cfg)
    assert str(err.value) == (
        "invalid settings; fix these keys:\n  monitor.spike_end_z (env FINSENTRY_MONITOR__SPIKE_END_Z): renamed; set"
        " monitor.spike.end_z (env FINSENTRY_MONITOR__SPIKE__END_Z)"
    )
    monkeypatch.setenv("FINSENTRY_MONITOR__SPIKE_START_Z", "4")
    with pytest.raises(SettingsError) as err:
        load_settings()
    (line,) = str(err.value).splitlines()[1:]
    assert line.startswith(
        "  monitor.spike_start_z (env FINSENTRY_MONITOR__SPIKE_START_Z): renamed; set monitor.spike.start_z"
        " (env FINSENTRY_MONITOR__SPIKE__START_Z); the baseline clamp"
    )


def test_the_spike_group_is_layered_key_by_key_env_over_file_over_defaults(tmp_path, monkeypatch):
    from finsentry import settings as settings_module

    cfg = tmp_path / "c.yaml"
    cfg.write_text("monitor:\n  spike:\n    start_z: 4.0\n    min_items: 5\n")
    monkeypatch.setenv("FINSENTRY_MONITOR__SPIKE__START_Z", "3.5")
    monkeypatch.setenv("FINSENTRY_MONITOR__SPIKE__END_Z", "1.0")
    s = load_settings(cfg, monitor={"spike": {"min_items": 7}})
    spike = s.monitor.spike
    assert (spike.start_z, spike.end_z, spike.min_items, spike.baseline_min_items) == (3.5, 1.0, 7, 10)
    # nothing is kept between calls: the file's values were passed to that call only
    assert settings_module.Settings().monitor.spike.min_items == 10
    assert load_settings().monitor.spike.start_z == 3.5
