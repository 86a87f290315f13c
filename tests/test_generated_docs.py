"""The generated references are up to date: ``docs/metrics.md`` and ``docs/config.md`` equal what their
generators write now, and the metrics generator refuses a registry that its declarations do not describe."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter

from finsentry.common.metric_spec import MetricSpec
from finsentry.common.paths import REPO_ROOT
from finsentry.config_docs import config_markdown
from finsentry.metrics_docs import MetricsDocError, ServiceMetrics, check_service, metrics_markdown, service_registries

DOCS = REPO_ROOT / "docs"


def test_metrics_md_is_generated_from_the_registries():
    assert (DOCS / "metrics.md").read_text(encoding="utf-8") == metrics_markdown(), (
        "docs/metrics.md is out of date: run python -m finsentry.metrics_docs"
    )


def test_config_md_is_generated_from_the_settings():
    assert (DOCS / "config.md").read_text(encoding="utf-8") == config_markdown(), (
        "docs/config.md is out of date: run finsentry config docs"
    )


def test_every_declared_metric_is_named_in_the_contracts():
    contracts = (DOCS / "contracts.md").read_text(encoding="utf-8")
    assert "docs/metrics.md" in contracts
    names = [spec.name for service in service_registries() for spec in service.specs]
    assert len(names) == len(set(names)), "a metric name is declared by two services"
    assert [n for n in names if n not in contracts] == []


def _service(registry: CollectorRegistry, *specs: MetricSpec) -> ServiceMetrics:
    return ServiceMetrics("Test", "test registry", registry, specs)


SPEC = MetricSpec("demo_events_total", "counter", ("reason",), "events, by reason", "events")


def test_an_undeclared_or_unexported_metric_stops_the_generator():
    registry = CollectorRegistry()
    SPEC.counter(registry)
    Counter("demo_other_total", "not declared", registry=registry)
    with pytest.raises(MetricsDocError, match="demo_other_total"):
        check_service(_service(registry, SPEC))
    extra = MetricSpec("demo_missing", "gauge", (), "declared only")
    with pytest.raises(MetricsDocError, match="demo_missing"):
        check_service(_service(CollectorRegistry(), SPEC, extra))


def test_help_type_and_labels_must_match_the_declaration():
    registry = CollectorRegistry()
    Counter("demo_events_total", "other help", ["reason"], registry=registry)
    with pytest.raises(MetricsDocError, match="other help"):
        check_service(_service(registry, SPEC))
    registry = CollectorRegistry()
    Counter("demo_events_total", SPEC.help, ["cause"], registry=registry).labels(cause="x").inc()
    with pytest.raises(MetricsDocError, match="cause"):
        check_service(_service(registry, SPEC))


def test_a_spec_builds_only_its_own_type():
    with pytest.raises(ValueError, match="counter, not a gauge"):
        SPEC.gauge(CollectorRegistry())
    with pytest.raises(ValueError, match="counter or a gauge"):
        MetricSpec("demo_seconds", "histogram", (), "h").family()
