"""Run the doctest examples of the retraining modules."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "finsentry.model.label_store",
    "finsentry.model.gate",
    "finsentry.model.retrain",
    "finsentry.monitor.drift",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
