"""Run the doctest examples of the ingest modules."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "finsentry.ingest.normalize",
    "finsentry.ingest.contract",
    "finsentry.ingest.company_tickers",
    "finsentry.ingest.scored",
    "finsentry.ingest.seen_ids",
    "finsentry.ingest.replay",
    "finsentry.ingest.replay_source",
    "finsentry.ingest.validation",
    "finsentry.ingest.settings",
    "finsentry.ingest.hot_swap",
    "finsentry.ingest.event_order",
    "finsentry.ingest.language",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
