"""Ingest settings: env names, validation messages that name the key."""

from __future__ import annotations

import pytest

from finsentry.settings import SettingsError, load_settings


def test_env_sets_nested_scorer_and_replay_fields(monkeypatch):
    monkeypatch.setenv("FINSENTRY_INGEST__SCORER__MAX_BATCH_ITEMS", "16")
    monkeypatch.setenv("FINSENTRY_INGEST__SCORER__ALLOWED_LANGS", '["en", "de"]')
    monkeypatch.setenv("FINSENTRY_INGEST__REPLAY__RATE", "25.5")
    ingest = load_settings().ingest
    assert ingest.scorer.max_batch_items == 16
    assert ingest.scorer.allowed_langs == ["en", "de"]
    assert ingest.replay.rate == 25.5
    assert ingest.scorer.metrics_host == "127.0.0.1" and ingest.scorer.metrics_port == 8601


def test_bad_values_name_the_key(monkeypatch):
    monkeypatch.setenv("FINSENTRY_INGEST__SCORER__MAX_BATCH_ITEMS", "0")
    with pytest.raises(SettingsError, match="ingest.scorer.max_batch_items"):
        load_settings()


def test_speedup_and_rate_exclude_each_other():
    with pytest.raises(SettingsError, match=r"ingest\.replay.*either speedup or rate"):
        load_settings(ingest={"replay": {"speedup": 10, "rate": 5}})


def test_secrets_stay_out_of_repr():
    s = load_settings(ingest={"kafka": {"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "hunter2"}})
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.ingest)
