"""The ONNX Runtime session options the Scorer opens its sessions with (a real session on the shipped model)."""

from __future__ import annotations

import pytest

from finsentry.model.scorer import SPINNING_KEYS, Scorer
from finsentry.model.settings import ModelSettings


def _spinning(scorer: Scorer) -> dict[str, str]:
    options = scorer.session.get_session_options()
    return {key: options.get_session_config_entry(key) for key in SPINNING_KEYS}


def test_worker_threads_do_not_spin_by_default(model_dir):
    assert ModelSettings().intra_op_spinning is False
    scorer = Scorer.load(model_dir, intra_op_threads=2)
    assert _spinning(scorer) == {"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"}
    assert scorer.session.get_session_options().intra_op_num_threads == 2
    assert scorer.predict(["Shares plunge after the company cuts its outlook"])[0].sentiment == "negative"


def test_from_settings_passes_spinning_threads_and_batching(model_dir):
    settings = ModelSettings(path=model_dir, intra_op_spinning=True, intra_op_threads=1, max_length=32, batch_size=8)
    scorer = Scorer.from_settings(settings)
    assert _spinning(scorer) == {"session.intra_op.allow_spinning": "1", "session.inter_op.allow_spinning": "1"}
    assert scorer.session.get_session_options().intra_op_num_threads == 1
    assert (scorer.max_length, scorer.batch_size, scorer.folder) == (32, 8, model_dir)


def test_spinning_setting_is_a_boolean():
    assert ModelSettings(intra_op_spinning="true").intra_op_spinning is True  # as from FINSENTRY_MODEL__... env
    with pytest.raises(ValueError, match="intra_op_spinning"):
        ModelSettings(intra_op_spinning="sometimes")


def test_runs_of_sixteen_by_default_give_the_probabilities_of_one_run_of_sixty_four(model_dir):
    """The default splits a service call of 64 into length-sorted runs of 16 (less padding); with the static
    INT8 model that changes no probability beyond float noise."""
    from finsentry.model.datasets import load_examples
    from finsentry.model.scorer import DEFAULT_BATCH_SIZE

    assert ModelSettings().batch_size == DEFAULT_BATCH_SIZE == 16
    default = Scorer.load(model_dir, intra_op_threads=1)
    one_run = Scorer.load(model_dir, intra_op_threads=1, batch_size=64)
    assert default.batch_size == 16
    texts = [e.text for e in load_examples("fpb_test")[:64]]
    a, b = default.predict(texts), one_run.predict(texts)
    worst = max(
        abs(x - y)
        for p, q in zip(a, b, strict=True)
        for x, y in zip(p.sentiment_probs + (p.topic_prob,), q.sentiment_probs + (q.topic_prob,), strict=True)
    )
    assert worst <= 1e-4, f"largest probability difference {worst}"
    assert [p.topic for p in a] == [p.topic for p in b] and [p.sentiment for p in a] == [p.sentiment for p in b]
