"""Every load verifies the model folder against its card (issue 15, finding 5): a valid tokenizer of another
vocabulary, a labels.json with the sentiment order swapped, and a tokenizer whose ids exceed the embedding are
refused at load with one line, by ``Scorer.load``, ``finsentry score`` and ``finsentry scorer``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from finsentry.model.scorer import ModelLoadError, Scorer
from finsentry.model.verify import ModelVerificationError, artifact_hashes

PLUNGE = "Shares plunge 30% after the company issues a profit warning and its CEO resigns"
FIRST_WORD_ID = 104
"""Ids below this are [PAD], [unused*], [UNK], [CLS], [SEP], [MASK] in the shipped WordPiece vocabulary (kept)."""
VOCAB_SIZE = 30522


def _remap_vocab(folder: Path, new_id: Callable[[int], int]) -> None:
    data = json.loads((folder / "tokenizer.json").read_text())
    vocab = data["model"]["vocab"]
    data["model"]["vocab"] = {tok: (i if i < FIRST_WORD_ID else new_id(i)) for tok, i in vocab.items()}
    (folder / "tokenizer.json").write_text(json.dumps(data))


def other_vocabulary(folder: Path) -> None:
    """A valid tokenizer.json whose vocabulary maps every word to another id of the same size (ids reversed)."""
    _remap_vocab(folder, lambda i: VOCAB_SIZE - 1 + FIRST_WORD_ID - i)


def swapped_sentiment(folder: Path) -> None:
    """labels.json with negative and positive swapped (a plunge would read positive)."""
    labels = json.loads((folder / "labels.json").read_text())
    labels["sentiment"] = ["positive", "neutral", "negative"]
    (folder / "labels.json").write_text(json.dumps(labels))


def ids_beyond_embedding(folder: Path) -> None:
    """A tokenizer.json whose word ids lie beyond the model's 30,522-row embedding."""
    _remap_vocab(folder, lambda i: i + VOCAB_SIZE)


CASES = {"other_vocabulary": other_vocabulary, "swapped_sentiment": swapped_sentiment, "ids": ids_beyond_embedding}
BAD_FILE = {"other_vocabulary": "tokenizer.json", "swapped_sentiment": "labels.json", "ids": "tokenizer.json"}


@pytest.fixture
def artifact(model_dir, tmp_path) -> Path:
    """A copy of the shipped model folder (the files a scorer loads and the card)."""
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.onnx", "tokenizer.json", "labels.json", "card.json"):
        shutil.copy2(model_dir / name, folder / name)
    return folder


def rehash_card(folder: Path) -> None:
    """Record the folder's current file hashes in its card, keeping its reference logits and labels."""
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps(card | {"artifact_files": artifact_hashes(folder)}))


def test_the_shipped_folder_verifies_and_its_card_hashes_the_files_a_scorer_loads(model_dir):
    recorded = json.loads((model_dir / "card.json").read_text())["artifact_files"]
    actual = artifact_hashes(model_dir)
    for name in ("model.onnx", "tokenizer.json", "labels.json"):
        assert recorded[name] == actual[name], name
    scorer = Scorer.load(model_dir)
    assert scorer.reference_diff is not None and scorer.reference_diff <= 1e-3


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_file_loads_and_serves_wrongly_without_verification(artifact, case):
    """What scorers did before every load verified: each corrupt folder opened and served."""
    CASES[case](artifact)
    unverified = Scorer.load(artifact, verify=False)
    card = json.loads((artifact / "card.json").read_text())
    refs = card["reference_logits"]
    if case == "ids":
        with pytest.raises(Exception, match="(?i)indices|out of bounds|idx"):
            unverified.predict([PLUNGE])
    elif case == "swapped_sentiment":
        assert unverified.predict([PLUNGE])[0].sentiment == "positive"
    else:
        _, sent, _ = unverified.logits([r["text"] for r in refs])
        assert np.abs(sent - np.array([r["sentiment_logits"] for r in refs])).max() > 1.0


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_file_is_refused_at_load_by_its_hash(artifact, case):
    CASES[case](artifact)
    with pytest.raises(ModelVerificationError) as err:
        Scorer.load(artifact)
    assert err.value.reason == "hash_mismatch"
    message = str(err.value)
    assert message.startswith(f"{artifact / BAD_FILE[case]} is not the file its card describes (sha256 ")
    assert "\n" not in message and "finsentry model eval --write-card" in message
    assert isinstance(err.value, ModelLoadError)  # every entry point's existing handler catches it


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_card_rehashed_over_a_bad_file_is_still_refused_by_the_reference_check(artifact, case):
    CASES[case](artifact)
    rehash_card(artifact)
    with pytest.raises(ModelVerificationError) as err:
        Scorer.load(artifact)
    assert err.value.reason == "reference_mismatch"
    message = str(err.value)
    assert "\n" not in message
    expected = {
        "other_vocabulary": f"{artifact}: model logits differ from the card's reference logits by ",
        "swapped_sentiment": f"{artifact / 'labels.json'}: sentiment labels ['positive', 'neutral', 'negative'] "
        "differ from the card's ['negative', 'neutral', 'positive'] (names or order)",
        "ids": f"{artifact}: the card's reference texts cannot be scored (",
    }[case]
    assert message.startswith(expected), message


def test_a_folder_without_a_card_or_without_the_hashes_is_refused(artifact):
    card = json.loads((artifact / "card.json").read_text())
    (artifact / "card.json").unlink()
    with pytest.raises(ModelVerificationError, match=r"card\.json is missing") as err:
        Scorer.load(artifact)
    assert err.value.reason == "missing_card"
    old = card | {"artifact_files": {k: v for k, v in card["artifact_files"].items() if k != "tokenizer.json"}}
    (artifact / "card.json").write_text(json.dumps(old))
    with pytest.raises(ModelVerificationError, match=r"records no sha256 for tokenizer\.json") as err:
        Scorer.load(artifact)
    assert err.value.reason == "hash_mismatch"


def test_another_max_length_or_variant_is_verified_on_the_cpu_int8_model(artifact):
    """The card's logits are model.onnx's at labels.json's max_length: a scorer at another length is checked
    through a second CPU session, so an override does not fail verification (nor skip it)."""
    assert Scorer.load(artifact, max_length=128).reference_diff <= 1e-3
    other_vocabulary(artifact)
    rehash_card(artifact)
    with pytest.raises(ModelVerificationError, match="differ from the card's reference logits"):
        Scorer.load(artifact, max_length=128)


@pytest.mark.parametrize("case", sorted(CASES))
def test_score_cli_refuses_each_bad_file_with_one_line(artifact, case, monkeypatch):
    from finsentry.cli import app

    CASES[case](artifact)
    monkeypatch.setenv("FINSENTRY_MODEL__PATH", str(artifact))
    res = CliRunner().invoke(app, ["score", PLUNGE])
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)
    assert res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(f"error: {artifact / BAD_FILE[case]} is not the file its card describes")


def test_scorer_verb_refuses_a_bad_tokenizer_with_one_line_and_no_traceback(artifact):
    other_vocabulary(artifact)
    env = os.environ | {"FINSENTRY_MODEL__PATH": str(artifact)}
    cli = [sys.executable, "-c", "from finsentry.cli import main; main()"]
    done = subprocess.run([*cli, "scorer"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(
        f"error: model.path (env FINSENTRY_MODEL__PATH): {artifact / 'tokenizer.json'} is not the file its card "
        "describes (sha256 "
    )
    assert "Traceback" not in done.stderr
