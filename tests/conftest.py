"""Shared fixtures: a real embedded Kafka-protocol broker and the model artifact."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from finsentry.common.paths import SHIPPED_MODEL_DIR


@pytest.fixture(scope="module")
def broker() -> Iterator:
    """A fresh embedded Tansu broker on a free 127.0.0.1 port with finsentry's topics, one per test module."""
    from finsentry.ingest.broker import EmbeddedBroker

    with EmbeddedBroker(port=0) as b:
        yield b


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The shipped model artifact folder (override with ``FINSENTRY_TEST_MODEL_DIR``)."""
    path = Path(os.environ.get("FINSENTRY_TEST_MODEL_DIR") or SHIPPED_MODEL_DIR)
    if not (path / "model.onnx").is_file():
        raise FileNotFoundError(f"no model artifact at {path}: the shipped model must be committed")
    return path


@pytest.fixture(scope="session")
def long_article() -> tuple[str, str]:
    """``(opening, body)`` of a company-news text longer than the model's 64-token window: a neutral opening
    (two windows on its own) and a clearly negative body; together three windows of 64 tokens."""
    opening = (
        "Nordic Packaging Oyj, which is headquartered in Espoo, Finland, designs and manufactures cartons, labels and "
        "flexible packaging for food and pharmaceutical customers. The company operates eleven production plants in "
        "Finland, Sweden, Poland and China and employs about 2,400 people. Its shares are listed on Nasdaq Helsinki."
    )
    body = (
        "Shares plunged 30 percent after the company issued a profit warning and its chief executive resigned. "
        "Operating loss widened to EUR 42 million as net sales fell 25 percent and the largest customer cancelled its "
        "contract. The company said it will cut 900 jobs and close three plants, and its lenders warned that "
        "covenants may be breached. Analysts downgraded the stock to sell and said a rights issue at a steep discount "
        "now looks unavoidable."
    )
    return opening, body
