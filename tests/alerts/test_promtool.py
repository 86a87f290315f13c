"""The rule files pass ``promtool check rules`` and their unit tests (``promtool test rules``); every alert has
the annotations, a runbook and a unit test, and reads only metrics named in docs/contracts.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from finsentry.alerts.configs import (
    ALERTING_RULES,
    PROMETHEUS_CONFIG,
    PROMTOOL_TESTS_DIR,
    RULE_FILES,
    SCRAPE_JOBS,
    load_yaml,
)
from finsentry.alerts.processes import promtool
from finsentry.common.paths import REPO_ROOT

TEST_FILES = sorted(PROMTOOL_TESTS_DIR.glob("*_test.yml"))
ALERT_RULES = [r for g in load_yaml(ALERTING_RULES)["groups"] for r in g["rules"] if "alert" in r]


def test_rule_files_pass_promtool_check() -> None:
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout  # FinsentrySpikeEventsUndelivered is the 12th
    assert "SUCCESS: 5 rules found" in result.stdout


def test_prometheus_config_passes_promtool_check() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = [j["job_name"] for j in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]]
    assert jobs == list(SCRAPE_JOBS)


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_test_fails_on_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests compare annotations exactly: a changed number in an expected description fails."""
    source = (PROMTOOL_TESTS_DIR / "spikes_test.yml").read_text()
    assert "turned negative at z 4.5 (standard" in source
    mutated = source.replace("turned negative at z 4.5 (standard", "turned negative at z 4.6 (standard").replace(
        "../alerting_rules.yml", str(ALERTING_RULES)
    )
    (tmp_path / "mutated_test.yml").write_text(mutated)
    result = promtool("test", "rules", str(tmp_path / "mutated_test.yml"))
    assert result.returncode != 0
    assert "turned negative at z 4.5 (standard" in result.stdout + result.stderr


@pytest.mark.parametrize("rule", ALERT_RULES, ids=lambda r: r["alert"])
def test_alert_has_severity_annotations_and_runbook(rule: dict) -> None:
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule.get("for"), "every alert needs a `for` against single noisy samples"
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    assert "{{" in annotations["summary"] + annotations["description"], "the text must carry the numbers/labels"
    assert annotations["runbook_url"] == f"docs/runbooks/{rule['alert']}.md"
    runbook = REPO_ROOT / annotations["runbook_url"]
    assert runbook.is_file(), f"missing runbook {runbook}"
    assert rule["alert"] in runbook.read_text().splitlines()[0]


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {r["alert"] for r in ALERT_RULES}
    assert names - fired == set(), "alerts never seen firing in a unit test"
    assert names - quiet == set(), "alerts never checked quiet/resolved in a unit test"


def test_rules_read_only_metrics_of_the_contract() -> None:
    contract = (REPO_ROOT / "docs" / "contracts.md").read_text()
    exprs = " ".join(r["expr"] for f in RULE_FILES for g in load_yaml(f)["groups"] for r in g["rules"])
    exprs += " ".join(r["annotations"]["description"] for r in ALERT_RULES)
    used = set(re.findall(r"\bfinsentry_[a-z_]+", exprs))
    suffixes = ("_bucket", "_count", "_sum")
    bases = {next((m[: -len(s)] for s in suffixes if m.endswith(s)), m) for m in used}
    assert bases, "no metrics found in the rules"
    missing = sorted(m for m in bases if m not in contract)
    assert missing == [], f"metrics not in docs/contracts.md: {missing}"
