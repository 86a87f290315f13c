"""Building a ScorerService (no broker needed until run): company map, metrics, swap before start."""

from __future__ import annotations

import re

import pytest

from finsentry.ingest.company_tickers import CompanyTickerMap
from finsentry.ingest.scorer_service import CompanyTableError, ScorerService
from finsentry.ingest.settings import IngestSettings


def test_company_map_comes_from_the_settings_table(scorer):
    service = ScorerService(scorer, IngestSettings(), serve_metrics=False)
    assert isinstance(service.companies, CompanyTickerMap)
    assert service.companies.find("Royal Dutch Shell rises") == ["RDS-B"]
    assert ScorerService(scorer, IngestSettings(company_table=None), serve_metrics=False).companies is None


def test_metrics_start_with_the_model_version_and_every_scorer_reason(scorer):
    service = ScorerService(scorer, IngestSettings(), serve_metrics=False)
    registry = service.metrics.registry
    assert registry.get_sample_value("finsentry_model_info", {"model_version": scorer.model_version}) == 1
    assert registry.get_sample_value("finsentry_dead_letters_total", {"reason": "unsupported_language"}) == 0
    assert registry.get_sample_value("finsentry_dead_letters_total", {"reason": "invalid_label"}) is None
    other = ScorerService(scorer, IngestSettings(), serve_metrics=False)
    assert other.metrics.registry is not registry  # two scorers in one process do not clash


def test_swap_before_start_is_used_by_the_first_batch(scorer, model_dir):
    from finsentry.model import Scorer

    service = ScorerService(scorer, IngestSettings(), serve_metrics=False)
    replacement = Scorer.load(model_dir)
    replacement.model_version = "replacement-1"
    service.swap_model(replacement)
    assert service.model is replacement
    assert service._take_model() is replacement
    registry = service.metrics.registry
    assert registry.get_sample_value("finsentry_model_info", {"model_version": "replacement-1"}) == 1
    assert registry.get_sample_value("finsentry_model_info", {"model_version": scorer.model_version}) is None


def test_a_missing_company_table_is_a_company_table_error_not_a_file_not_found(scorer, tmp_path):
    for path, why in (("/nope.tsv", "cannot read /nope.tsv: No such file or directory"), (tmp_path, "Is a directory")):
        with pytest.raises(CompanyTableError, match=re.escape(why)) as err:
            ScorerService(scorer, IngestSettings(company_table=path), serve_metrics=False)
        assert not isinstance(err.value, OSError)  # so callers do not take it for a missing model artifact
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\nx\ty\n")
    with pytest.raises(CompanyTableError, match=r"bad\.tsv: expected the columns Symbol and Company"):
        ScorerService(scorer, IngestSettings(company_table=bad), serve_metrics=False)


def test_from_settings_reads_the_company_table_before_the_model(tmp_path):
    from finsentry.settings import load_settings

    settings = load_settings(ingest={"company_table": "/nope.tsv"}, model={"path": str(tmp_path / "no-model")})
    with pytest.raises(CompanyTableError, match="/nope.tsv"):  # not ModelLoadError: the table is checked first
        ScorerService.from_settings(settings.ingest, settings.model, serve_metrics=False)


def test_scorer_cli_blames_the_company_table_setting_for_a_missing_table():
    from typer.testing import CliRunner

    from finsentry.cli import app

    result = CliRunner().invoke(app, ["scorer"], env={"FINSENTRY_INGEST__COMPANY_TABLE": "/nope.tsv"})
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == (
        "error: ingest.company_table (env FINSENTRY_INGEST__COMPANY_TABLE): cannot read /nope.tsv: "
        "No such file or directory"
    )
    assert "model.path" not in result.output
