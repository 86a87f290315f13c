"""Fixtures of the alerts tests (helpers in ``alerts_testkit``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alerts_testkit import SPIKE_EVENT, MonitorStub, Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A recording HTTP sink that answers 200."""
    with Receiver() as r:
        yield r


@pytest.fixture
def monitor() -> Iterator[MonitorStub]:
    """A monitor API stub with one spike on ``topic:earnings``."""
    with MonitorStub([SPIKE_EVENT]) as m:
        yield m
