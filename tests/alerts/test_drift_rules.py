"""The drift alert: promtool check and unit test, loaded by prometheus.yml, runbook, metric in the contract."""

from __future__ import annotations

import yaml

from finsentry.alerts.configs import PROMETHEUS_CONFIG
from finsentry.alerts.processes import promtool
from finsentry.common.paths import REPO_ROOT

RULES = REPO_ROOT / "alerts" / "drift_rules.yml"
TEST = REPO_ROOT / "alerts" / "tests" / "drift_test.yml"


def test_drift_rules_pass_promtool_check_and_unit_test():
    check = promtool("check", "rules", str(RULES))
    assert check.returncode == 0 and "SUCCESS: 1 rules found" in check.stdout, check.stdout + check.stderr
    unit = promtool("test", "rules", str(TEST))
    assert unit.returncode == 0 and "SUCCESS" in unit.stdout, unit.stdout + unit.stderr


def test_unit_test_fails_on_a_wrong_threshold(tmp_path):
    """The unit test really checks the rule: with the threshold at 0.5 the expected alert is missing."""
    mutated = tmp_path / "drift_rules.yml"
    source = RULES.read_text()
    assert "finsentry_prediction_drift_psi > 0.25" in source
    mutated.write_text(source.replace("drift_psi > 0.25", "drift_psi > 0.5"))
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "drift_test.yml").write_text(TEST.read_text())
    unit = promtool("test", "rules", str(tmp_path / "tests" / "drift_test.yml"))
    assert unit.returncode != 0 and "PredictionDrift" in unit.stdout + unit.stderr


def test_prometheus_loads_the_drift_rules():
    assert "drift_rules.yml" in yaml.safe_load(PROMETHEUS_CONFIG.read_text())["rule_files"]


def test_alert_has_runbook_and_reads_a_contract_metric():
    rule = yaml.safe_load(RULES.read_text())["groups"][0]["rules"][0]
    assert rule["alert"] == "PredictionDrift" and rule["labels"]["severity"] == "warning"
    runbook = REPO_ROOT / rule["annotations"]["runbook_url"]
    text = runbook.read_text()
    assert text.splitlines()[0] == "# PredictionDrift"
    assert "finsentry model retrain" in text and "docs/retraining.md" in text
    assert "finsentry_prediction_drift_psi" in (REPO_ROOT / "docs" / "contracts.md").read_text()
