"""Building a ScorerService (no broker needed until run): company map, metrics, swap before start."""

from __future__ import annotations

from finsentry.ingest.company_tickers import CompanyTickerMap
from finsentry.ingest.scorer_service import ScorerService
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
    service.swap_scorer(replacement)
    assert service.scorer is replacement
    assert service._take_scorer() is replacement
    registry = service.metrics.registry
    assert registry.get_sample_value("finsentry_model_info", {"model_version": "replacement-1"}) == 1
    assert registry.get_sample_value("finsentry_model_info", {"model_version": scorer.model_version}) is None
