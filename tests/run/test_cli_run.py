"""``finsentry --help``, every verb's help, and ``finsentry run``'s errors on bad options (before anything starts)."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from finsentry.cli import app
from finsentry.common.paths import REPO_ROOT

FINSENTRY = str(Path(sys.executable).with_name("finsentry"))
ARCHITECTURE_VERBS = {"broker", "scorer", "aggregator", "relay", "replay", "run", "score", "report", "model", "labels"}
"""Verbs ../shared/architecture.md lists."""


def _commands(group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path under ``group`` (typer's click group), sub-groups included."""
    ctx = typer.Context(group)
    out = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        out.append((*prefix, name))
        if hasattr(cmd, "list_commands"):
            out += _commands(cmd, (*prefix, name))
    return out


def _finsentry(*args: str, env: dict[str, str] | None = None, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FINSENTRY, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO_ROOT,
        env=os.environ | {"FINSENTRY_MONITOR__HTTP_PORT": "0"} | (env or {}),
        check=False,
    )


def test_top_level_help_lists_every_verb_of_the_architecture() -> None:
    group = typer.main.get_command(app)
    top = set(group.list_commands(typer.Context(group)))
    assert top >= ARCHITECTURE_VERBS
    result = _finsentry("--help")
    assert result.returncode == 0
    for verb in ARCHITECTURE_VERBS:
        assert verb in result.stdout


def test_every_command_has_help_with_a_summary_and_documented_options() -> None:
    group = typer.main.get_command(app)
    commands = _commands(group)
    assert ("run",) in commands and len(commands) >= 15
    for path in commands:
        cmd = group
        for name in path:
            cmd = cmd.get_command(typer.Context(cmd), name)
        assert (cmd.help or "").strip(), f"finsentry {' '.join(path)} has no help"
        for param in cmd.params:
            if param.param_type_name == "option" and param.name != "help":
                assert (param.help or "").strip(), f"finsentry {' '.join(path)} {param.opts[0]} has no help"


def test_run_help_names_its_options() -> None:
    result = _finsentry("run", "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0
    for option in (
        "--demo",
        "--source",
        "--speed",
        "--from",
        "--to",
        "--bootstrap-servers",
        "--with-prometheus",
        "--workdir",
    ):
        assert option in result.stdout
    assert "2023-03-10" in result.stdout and "2015-08-24" in result.stdout and "Ctrl-C" in result.stdout


@pytest.mark.parametrize("verb", ["score", "run", "replay", "report"])
def test_help_shows_no_value_for_flags_and_no_raw_markup(verb: str) -> None:
    """Issue 13: flags were shown as ``--help <bool>`` and docstrings' ``code`` markup was printed raw."""
    result = _finsentry(verb, "--help", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "<bool>" not in result.stdout, result.stdout
    assert "``" not in result.stdout, result.stdout
    assert "--help" in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["--from", "2015-13-01"], {}, 2, "--from"),
        (["--from", "2015-08-20", "--to", "2015-08-19"], {}, 2, "must be after --from"),
        (["--preset", "busy"], {}, 2, "use stocknet or none"),
        (["--demo", "ftx"], {}, 2, "'ftx': use svb or stocknet"),
        (["--from", "2030-01-01", "--to", "2030-01-02"], {}, 2, "svb2023_cnbc.jsonl falls in 2030-01-01"),
        (["--demo", "stocknet", "--from", "2030-01-01", "--to", "2030-01-02"], {}, 2, "no StockNet month in"),
        (["--source", "no/such/file.jsonl"], {}, 2, "--source"),
        ([], {"FINSENTRY_MODEL__PATH": "/no/such/model"}, 2, "model.path (env FINSENTRY_MODEL__PATH)"),
        (["--with-prometheus"], {"PATH": "/nonexistent"}, 2, "--with-prometheus: none of prometheus is on PATH"),
        (["--bootstrap-servers", "127.0.0.1:1"], {}, 1, "--bootstrap-servers 127.0.0.1:1"),
    ],
)
def test_run_refuses_bad_options_with_a_message_naming_them(args, env, code, message, model_dir) -> None:
    result = _finsentry("run", *args, env={"FINSENTRY_MODEL__PATH": str(model_dir)} | env)
    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stderr, result.stderr


def test_stocknet_months_cover_the_window() -> None:
    from datetime import UTC, datetime

    from finsentry.ingest.demo_streams import DEMOS
    from finsentry.ingest.replay_source import stocknet_months

    demo = DEMOS["stocknet"]
    assert [p.name for p in stocknet_months(demo.time_from, demo.time_to)] == ["stocknet_tweets_2015-08.csv"]
    assert demo.paths(None, None) == stocknet_months(demo.time_from, demo.time_to)
    months = stocknet_months(datetime(2015, 8, 25, tzinfo=UTC), datetime(2015, 9, 3, tzinfo=UTC))
    assert [p.name for p in months] == ["stocknet_tweets_2015-08.csv", "stocknet_tweets_2015-09.csv"]
    with pytest.raises(FileNotFoundError):
        stocknet_months(datetime(2020, 1, 1, tzinfo=UTC), None)


def test_promql_metric_names_helper() -> None:
    import run_testkit

    result = doctest.testmod(run_testkit)
    assert result.attempted > 0 and result.failed == 0


def test_a_busy_dashboard_port_gives_one_line_naming_the_option() -> None:
    """Issue 13: a taken port gave a 20-line traceback; now one error naming --http-port and the variable."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _finsentry("run", "--broker-port", "0", env={"FINSENTRY_MONITOR__HTTP_PORT": str(port)}, timeout_s=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--http-port" in errors[0] and "FINSENTRY_MONITOR__HTTP_PORT" in errors[0], errors
    assert f"127.0.0.1:{port}" in errors[0], errors


def test_a_busy_broker_port_names_the_option_of_the_command_that_was_run() -> None:
    """``finsentry run`` said 'pick another with --port', the option of ``finsentry broker``, not its own
    ``--broker-port``."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = _finsentry("run", "--broker-port", str(port), timeout_s=120)
        broker = _finsentry("broker", "--port", str(port), timeout_s=60)
    assert run.returncode == 1, run.stderr
    assert f"error: embedded broker (--broker-port {port}): port {port} on 127.0.0.1 is already in use" in run.stderr
    assert "--port " not in run.stderr.replace("--broker-port ", ""), run.stderr
    assert broker.returncode == 1, broker.stderr
    assert f"error: --port {port}: port {port} on 127.0.0.1 is already in use" in broker.stderr, broker.stderr


def test_an_unexpected_error_after_start_still_stops_the_child_processes(monkeypatch, model_dir) -> None:
    """A bug after the services started (the banner reading renamed settings did it today) ended the process with
    a traceback and left the broker, Prometheus and Alertmanager running (found orphaned on the test machine)."""
    from run_testkit import group_alive
    from typer.testing import CliRunner

    from finsentry.run_pipeline import Pipeline

    seen: list[int] = []

    def broken_banner(self):
        seen.extend(c.pgid for c in self.sup.children)
        raise RuntimeError("a bug after start")

    monkeypatch.setattr(Pipeline, "banner", broken_banner)
    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(model_dir))
    ports = ("FINSENTRY_MONITOR__HTTP_PORT", "FINSENTRY_INGEST__SCORER__METRICS_PORT", "FINSENTRY_ALERTS__RELAY_PORT")
    for name in ports:
        monkeypatch.setenv(name, "0")
    result = CliRunner().invoke(app, ["run", "--broker-port", "0"])
    assert isinstance(result.exception, RuntimeError) and str(result.exception) == "a bug after start", result.output
    assert seen, "the broker was not started before the banner"
    alive = [pgid for pgid in seen if group_alive(pgid)]
    assert alive == [], f"process groups left running: {alive}"


def test_the_replay_plan_says_how_many_rows_of_the_source_cannot_be_replayed(tmp_path) -> None:
    """A broken JSONL line was dropped without a word: the console said 'replay: 6 items ... sent 6 of 6'."""
    import json

    from finsentry.run_console import Console
    from finsentry.run_options import RunOptions
    from finsentry.run_pipeline import Pipeline
    from finsentry.settings import load_settings
    from finsentry.supervisor import Supervisor

    rows = [
        json.dumps({"id": f"n{i}", "text": f"Shares rise {i}", "published_at": f"2024-05-01T12:0{i}:00Z"})
        for i in range(6)
    ]
    source = tmp_path / "news.jsonl"
    source.write_text("\n".join([*rows[:3], '{"id": "broken", "text": ', *rows[3:]]) + "\n", encoding="utf-8")
    options = RunOptions(sources=[source], time_from=None, time_to=None, preset=None, workdir=tmp_path / "wd")
    pipeline = Pipeline(load_settings(), options, Console(), Supervisor())
    pipeline._load_items()
    lines = pipeline.schedule()
    assert lines[0].startswith("replay: 6 items, 2024-05-01 12:00 .. 2024-05-01 12:05 UTC"), lines
    assert lines[1] == "not replayed: 1 (bad_line 1) unusable rows of the source", lines


def test_report_refuses_an_out_it_cannot_create_before_scoring(tmp_path) -> None:
    """``--out`` naming a file ended in a FileExistsError traceback, after the model had scored the tweets."""
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder", encoding="utf-8")
    result = _finsentry("report", "--stocknet", "2015-08-17:2015-08-17", "--out", str(taken))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert f"error: --out {taken}: cannot create the folder (File exists)" in result.stderr, result.stderr
    assert "scored" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["run", "--broker-port", "0", "--workdir", ""], "--workdir"),
        (["run", "--broker-port", "0", "--source", ""], "--source"),
        (["report", "--stocknet", "2015-08-17:2015-08-17", "--out", ""], "--out"),
        (["report", "--out", "rep", "--input", ""], "--input"),
        (["--config", "", "config", "show"], "--config"),
        (["config", "docs", "--out", ""], "--out"),
        (["broker", "--port", "0", "--log-file", ""], "--log-file"),
        (["replay", ""], "FILES"),
        (["score", "--input", ""], "--input"),
        (["score", "Shares fall", "--output", ""], "--output"),
        (["labels", "import", ""], "FILE"),
        (["model", "train", "--out", ""], "--out"),
        (["model", "export", "--checkpoint", "best.pt", "--version", "v", "--out", ""], "--out"),
        (["model", "requantize", "--source", "a", "--version", "v", "--out", ""], "--out"),
        (["model", "eval", "--plots", ""], "--plots"),
        (["model", "tune", "--best-out", ""], "--best-out"),
        (["model", "build", "--run-dir", ""], "--run-dir"),
    ],
)
def test_an_empty_path_is_refused_with_one_line_naming_the_option(args, option, tmp_path, model_dir) -> None:
    """``Path("")`` is the current folder: ``run --workdir ""`` wrote its relay token and state there,
    ``report --out ""`` its report, ``model eval --plots ""`` its PNGs; ``replay ""`` replayed its files."""
    result = subprocess.run(
        [FINSENTRY, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=os.environ | {"FINSENTRY_MONITOR__HTTP_PORT": "0", "FINSENTRY_MODEL__PATH": str(model_dir)},
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"error: {option}: an empty path; name a file or folder ('.' for the current one)"
    ], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_report_names_input_when_it_is_not_text(tmp_path) -> None:
    """A binary --input printed only the codec's message ("'utf-8' codec can't decode byte 0xff ..."), naming
    neither the option nor the file."""
    binary = tmp_path / "scores.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\x00\x01" * 50)
    result = _finsentry("report", "--input", str(binary), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"error: --input {binary}: not UTF-8 text (byte 0x89); give a JSONL file of news.scored records"
    ], result.stderr


def test_run_names_the_missing_columns_of_a_source(tmp_path, model_dir) -> None:
    """A --source CSV with other columns said 'no valid item (rows read 1, skipped 1 (unreadable_event_time 1))'."""
    source = tmp_path / "news.csv"
    source.write_text("headline,when\nFed holds rates,2020-03-01T10:00:00Z\n", encoding="utf-8")
    result = _finsentry(
        "run", "--broker-port", "0", "--source", str(source), env={"FINSENTRY_MODEL__PATH": str(model_dir)}
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"error: --source: {source}: missing columns text, published_at (it has headline, when; expected text, "
        "published_at and optionally id, source, url, tickers, lang)"
    ], result.stderr


def test_a_busy_port_is_printed_once_and_kept_in_the_log_file(tmp_path) -> None:
    """The service thread's 'ERROR finsentry.supervisor: aggregator failed: ...' log line reached the terminal
    above the run's own 'error: the aggregator ... did not start' line: the same failure twice."""
    import socket

    workdir = tmp_path / "wd"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _finsentry(
            "run",
            *("--broker-port", "0", "--workdir", str(workdir)),
            env={"FINSENTRY_MONITOR__HTTP_PORT": str(port)},
            timeout_s=120,
        )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the aggregator (--http-port"), lines
    assert result.stderr.count(f"127.0.0.1:{port}") == 1, result.stderr
    logged = (workdir / "finsentry.log").read_text(encoding="utf-8")
    assert "ERROR aggregator finsentry.supervisor: aggregator failed: [Errno 98]" in logged, logged


def test_a_command_whose_extra_is_not_installed_names_the_extra_in_one_line(tmp_path) -> None:
    # torch made unimportable in the child (a runtime install has no torch): `model train` needs the train extra
    code = (
        "import sys; sys.modules['torch'] = None; "
        "sys.argv = ['finsentry', 'model', 'train', '--config', 'model/configs/smoke.yaml', "
        f"'--out', {str(tmp_path)!r}]; "
        "from finsentry.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, check=False
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert lines[-1].startswith("error: this command needs the `train` extra (module 'torch' is not installed)"), lines
    assert "Traceback" not in result.stderr and "pip install torch==2.13.0" in lines[-1], result.stderr[-2000:]
