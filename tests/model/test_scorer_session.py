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
