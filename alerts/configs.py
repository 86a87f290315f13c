"""Paths of the alerting files in ``alerts/`` and builders of run-time variants of them.

The committed files are the production reference (deploy/ mounts them): ``prometheus.yml``,
``recording_rules.yml``, ``alerting_rules.yml``, ``alertmanager.yml``. The builders here return copies as
dicts with other targets, intervals, ``for`` durations or receiver URL: for the one-host demo
(``finsentry run --with-prometheus``) and for tests that need second-scale timing. They never change the
thresholds or the expressions.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

ALERTS_DIR = Path(__file__).resolve().parent
"""The ``alerts/`` folder."""
RECORDING_RULES = ALERTS_DIR / "recording_rules.yml"
ALERTING_RULES = ALERTS_DIR / "alerting_rules.yml"
RULE_FILES = (RECORDING_RULES, ALERTING_RULES)
"""Rule files in the order Prometheus loads them."""
PROMETHEUS_CONFIG = ALERTS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = ALERTS_DIR / "alertmanager.yml"
PROMTOOL_TESTS_DIR = ALERTS_DIR / "tests"
"""promtool unit-test files (``*_test.yml``)."""

SCRAPE_JOBS = ("finsentry-scorer", "finsentry-aggregator", "finsentry-relay")
"""Scrape job names the rules' ``up{job=...}`` alerts rely on."""


def duration(seconds: float) -> str:
    """A Prometheus duration string for ``seconds`` (whole milliseconds).

    >>> duration(15), duration(0.5), duration(90)
    ('15s', '500ms', '90s')
    """
    ms = round(seconds * 1000)
    if ms <= 0:
        raise ValueError(f"duration must be positive, got {seconds} s")
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def load_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping from ``path``."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    return data


def prometheus_config(
    *,
    targets: dict[str, list[str]] | None = None,
    alertmanagers: list[str] | None = None,
    scrape_interval_s: float | None = None,
    evaluation_interval_s: float | None = None,
    rule_files: list[Path] | None = None,
) -> dict[str, Any]:
    """``alerts/prometheus.yml`` with other targets and intervals, rule files as absolute paths.

    Args:
        targets: job name (one of :data:`SCRAPE_JOBS`) -> ``["host:port", ...]``; jobs not given keep theirs.
        alertmanagers: ``["host:port", ...]`` of Alertmanager.
        scrape_interval_s, evaluation_interval_s: seconds (scrape timeout becomes min(10 s, interval)).
        rule_files: rule files to load instead of :data:`RULE_FILES`.

    Raises:
        ValueError: a job in ``targets`` is not in the file.
    """
    cfg = load_yaml(PROMETHEUS_CONFIG)
    glob = cfg.setdefault("global", {})
    if scrape_interval_s is not None:
        glob["scrape_interval"] = duration(scrape_interval_s)
        glob["scrape_timeout"] = duration(min(10.0, scrape_interval_s))
    if evaluation_interval_s is not None:
        glob["evaluation_interval"] = duration(evaluation_interval_s)
    cfg["rule_files"] = [str(Path(p).resolve()) for p in (rule_files or RULE_FILES)]
    if alertmanagers is not None:
        cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    for name, hosts in (targets or {}).items():
        if name not in jobs:
            raise ValueError(f"no scrape job {name!r} in {PROMETHEUS_CONFIG} (jobs: {', '.join(jobs)})")
        jobs[name]["static_configs"] = [{"targets": list(hosts)}]
    return cfg


def rules_with_for(path: Path, for_s: float) -> dict[str, Any]:
    """The rule file at ``path`` with every alerting rule's ``for`` set to ``for_s`` seconds (tests, demos)."""
    rules = copy.deepcopy(load_yaml(path))
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = duration(for_s)
    return rules


def alertmanager_config(
    *,
    relay_url: str,
    credentials_file: Path,
    group_wait_s: float | None = None,
    group_interval_s: float | None = None,
    repeat_interval_s: float | None = None,
) -> dict[str, Any]:
    """``alerts/alertmanager.yml`` with the relay receiver at ``relay_url`` and its token file, optional timings.

    Args:
        relay_url: full webhook URL, e.g. ``http://127.0.0.1:8700/webhook``.
        credentials_file: file with the relay's bearer token.
        group_wait_s, group_interval_s, repeat_interval_s: seconds, applied to the root route.
    """
    cfg = load_yaml(ALERTMANAGER_CONFIG)
    for receiver in cfg["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = relay_url
            hook.setdefault("http_config", {}).setdefault("authorization", {})["credentials_file"] = str(
                credentials_file
            )
    route = cfg["route"]
    for key, value in (
        ("group_wait", group_wait_s),
        ("group_interval", group_interval_s),
        ("repeat_interval", repeat_interval_s),
    ):
        if value is not None:
            route[key] = duration(value)
    return cfg


def write_yaml(data: dict[str, Any], path: Path) -> Path:
    """Write ``data`` as YAML to ``path`` (parents created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
