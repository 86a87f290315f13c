"""Verification of a model artifact folder against its card, run by every :meth:`Scorer.load`.

A folder serves only if it is the folder its card (``card.json``) describes. :func:`verify_loaded` checks, in
this order, and stops at the first failure with a one-line :class:`ModelVerificationError`:

1. ``card.json`` exists and is a JSON object (reason ``missing_card``);
2. the sha256 of ``labels.json``, ``tokenizer.json``, the model file loaded and ``model.onnx`` (whose logits
   the card records) equal the card's ``artifact_files`` (reason ``hash_mismatch``, also when the card
   records no hash for one of them);
3. the label spaces of ``labels.json`` equal the card's ``labels`` where the card records them, and the CPU
   INT8 ``model.onnx`` re-scores the card's reference texts (32, in one batch as the card was written)
   within :data:`REFERENCE_ATOL` of the card's logits (reason ``reference_mismatch``; also when the
   reference texts cannot be scored at all, e.g. token ids beyond the embedding).

Each of these files, valid on its own, is caught: a ``tokenizer.json`` of another vocabulary, a
``labels.json`` with the sentiment order swapped, a tokenizer whose ids exceed the model's embedding (step 2;
step 3 catches them again where a card was re-hashed over the wrong files). Cost at load, measured on the
2-core development machine: sha256 of the 47 MB model (~0.05 s) and one batch of 32 short texts (~0.1 s
warm); serving on another execution provider than the CPU, or at another ``max_length`` than the card's,
loads one more CPU session of ``model.onnx`` for step 3 (~1 s).

Builders of a folder (export, evaluation, writing the card, the retraining gate) load with
``Scorer.load(..., verify=False)``: the card they write is what later loads are checked against
(:func:`artifact_hashes`, :func:`finsentry.model.evaluate.reference_logits`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from finsentry.model.scorer import ModelLoadError

if TYPE_CHECKING:
    from finsentry.model.scorer import Scorer

CARD = "card.json"
"""The card file of an artifact folder."""

HASHED_FILES: tuple[str, ...] = ("labels.json", "tokenizer.json")
"""Files besides the ONNX models whose sha256 the card records (``artifact_files``) and every load checks."""

REFERENCE_MODEL = "model.onnx"
"""The model file whose logits the card's ``reference_logits`` record (CPU dynamic INT8)."""

REFERENCE_ATOL = 1e-3
"""Largest absolute logit difference at which a loaded model still counts as reproducing its card."""

REFERENCE_BATCH_SIZE = 64
"""Texts per session run when the reference logits are written and re-scored: dynamic INT8 computes
activation scales per batch, so both must batch the reference texts alike (32 texts: one batch)."""

VERIFICATION_REASONS: tuple[str, ...] = ("missing_card", "hash_mismatch", "reference_mismatch")
"""Values of :attr:`ModelVerificationError.reason`."""

FIX = "rebuild the folder (`finsentry model export`, then `finsentry model eval --write-card`) or restore its files"
"""What to do, appended to every :class:`ModelVerificationError` message."""


class ModelVerificationError(ModelLoadError):
    """The artifact folder is not the one its card describes; ``reason`` is one of :data:`VERIFICATION_REASONS`.

    The message is one line: the folder or file, what differs, and what to do.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (read in chunks).

    Raises:
        OSError: the file cannot be read.
    """
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def artifact_hashes(folder: Path) -> dict[str, str]:
    """The card's ``artifact_files``: file name -> hex sha256 of every ``*.onnx`` and :data:`HASHED_FILES` present.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "labels.json").write_text("{}")
    ...     artifact_hashes(Path(d))
    {'labels.json': '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'}
    """
    folder = Path(folder)
    files = sorted([*folder.glob("*.onnx"), *(folder / n for n in HASHED_FILES if (folder / n).is_file())])
    return {p.name: file_sha256(p) for p in files}


def read_card(folder: Path) -> dict[str, Any]:
    """``card.json`` of ``folder`` as a dict.

    Raises:
        ModelVerificationError: ``missing_card``: no card, unreadable, not JSON or not a JSON object.
    """
    path = Path(folder) / CARD
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelVerificationError(
            "missing_card", f"{path} is missing: a model folder is served only with the card it is checked by; {FIX}"
        ) from exc
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelVerificationError("missing_card", f"{path} is unreadable ({type(exc).__name__}); {FIX}") from exc
    if not isinstance(card, dict):
        raise ModelVerificationError("missing_card", f"{path} is a JSON {type(card).__name__}, not an object; {FIX}")
    return card


def check_hashes(folder: Path, card: dict[str, Any], files: set[str]) -> None:
    """Compare the sha256 of each of ``files`` (names in ``folder``) with the card's ``artifact_files``.

    Raises:
        ModelVerificationError: ``hash_mismatch``: the card records no hash for a file, or a file differs
            (the first such file in name order is named).
    """
    recorded = card.get("artifact_files")
    recorded = recorded if isinstance(recorded, dict) else {}
    for name in sorted(files):
        path = Path(folder) / name
        expected = recorded.get(name)
        if not isinstance(expected, str):
            raise ModelVerificationError(
                "hash_mismatch", f"{Path(folder) / CARD} records no sha256 for {name} (artifact_files); {FIX}"
            )
        actual = file_sha256(path)
        if actual != expected:
            raise ModelVerificationError(
                "hash_mismatch",
                f"{path} is not the file its card describes (sha256 {actual[:12]}..., card {expected[:12]}...); {FIX}",
            )


def check_labels(card: dict[str, Any], labels: dict[str, Any], folder: Path) -> None:
    """The label spaces of ``labels.json`` must equal the card's ``labels`` (skipped if the card has none).

    Raises:
        ModelVerificationError: ``reference_mismatch``: a task's label names or their order differ.
    """
    recorded = card.get("labels")
    if not isinstance(recorded, dict):
        return
    for task in ("topic", "sentiment"):
        if task in recorded and list(recorded[task]) != list(labels[task]):
            raise ModelVerificationError(
                "reference_mismatch",
                f"{Path(folder) / 'labels.json'}: {task} labels {labels[task]} differ from the card's "
                f"{recorded[task]} (names or order); {FIX}",
            )


def verify_reference_logits(scorer: Scorer, card: dict[str, Any], atol: float = REFERENCE_ATOL) -> float:
    """Max absolute difference between ``scorer``'s logits and the card's reference logits (float, logit units).

    The reference texts are scored in batches of :data:`REFERENCE_BATCH_SIZE` (as the card was written).

    Raises:
        ModelVerificationError: ``missing_card``: the card has no ``reference_logits``; ``reference_mismatch``:
            the difference exceeds ``atol``, the shapes differ, or scoring the texts fails.
    """
    refs = card.get("reference_logits")
    if not isinstance(refs, list) or not refs:
        raise ModelVerificationError(
            "missing_card",
            f"{scorer.folder / CARD} has no reference_logits; rewrite it with `finsentry model eval --write-card`",
        )
    try:
        topic, sent, _ = scorer.logits([r["text"] for r in refs], batch_size=REFERENCE_BATCH_SIZE)
        want_topic = np.array([r["topic_logits"] for r in refs], dtype=np.float64)
        want_sent = np.array([r["sentiment_logits"] for r in refs], dtype=np.float64)
        diff = max(float(np.abs(topic - want_topic).max()), float(np.abs(sent - want_sent).max()))
    except Exception as exc:  # onnxruntime errors (ids beyond the embedding), malformed or misshapen card entries
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise ModelVerificationError(
            "reference_mismatch", f"{scorer.folder}: the card's reference texts cannot be scored ({reason}); {FIX}"
        ) from exc
    if not diff <= atol:
        raise ModelVerificationError(
            "reference_mismatch",
            f"{scorer.folder}: model logits differ from the card's reference logits by {diff:.2e} (tolerance "
            f"{atol:.0e}){_runtime_note(card)}; {FIX}",
        )
    return diff


def _runtime_note(card: dict[str, Any]) -> str:
    """`` (card written with onnxruntime X, this is Y)`` when the versions differ, else ``""``: INT8 kernels
    change between releases and CPUs, so that is the benign cause to rule out first."""
    from importlib import metadata

    packages = card.get("packages")
    written = packages.get("onnxruntime") if isinstance(packages, dict) else None
    try:
        here = metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:  # pragma: no cover - onnxruntime-gpu and the like
        return ""
    return f" (card written with onnxruntime {written}, this is {here})" if written and written != here else ""


def verify_loaded(scorer: Scorer, labels: dict[str, Any]) -> float:
    """Check a just loaded scorer's folder against its card (steps 1-3 of the module doc).

    Args:
        scorer: the scorer :meth:`Scorer.load` built (its ``folder``, ``variant``, ``max_length``, session).
        labels: the parsed ``labels.json`` it was built from.

    Returns:
        The largest reference-logit difference (float, <= :data:`REFERENCE_ATOL`).

    Raises:
        ModelVerificationError: with ``reason`` ``missing_card``, ``hash_mismatch`` or ``reference_mismatch``.
        ModelLoadError: the CPU ``model.onnx`` needed for the reference check cannot be loaded.
    """
    from finsentry.model.scorer import Scorer

    folder = scorer.folder
    card = read_card(folder)
    check_hashes(folder, card, {*HASHED_FILES, scorer.variant, REFERENCE_MODEL})
    check_labels(card, labels, folder)
    native = int(labels.get("max_length", 64))
    on_cpu = scorer.session.get_providers()[0] == "CPUExecutionProvider"
    if scorer.variant == REFERENCE_MODEL and scorer.max_length == native and on_cpu:
        reference = scorer
    else:
        reference = Scorer.load(folder, variant=REFERENCE_MODEL, max_length=native, verify=False)
    return verify_reference_logits(reference, card)
