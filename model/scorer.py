"""Torch-free runtime scoring: ONNX Runtime + tokenizers.

``Scorer.load(folder)`` opens a model artifact folder (``model.onnx`` CPU INT8, optional ``model.fp16.onnx``
for the CUDA execution provider and ``model.qdq.onnx`` for TensorRT, ``tokenizer.json``, ``labels.json``,
``card.json``), picks the variant for the execution provider ONNX Runtime actually granted and verifies the
folder against its card (file hashes, label spaces, reference logits: :mod:`finsentry.model.verify`).
``predict(texts)`` returns one :class:`Prediction` per text, in input order. Texts are sorted by length
before batching, so each batch is padded only to its own longest text (padding every batch to the global max
cost ~44% here).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from finsentry.model.settings import ModelSettings

log = logging.getLogger(__name__)

MAX_CHARS = 20_000
"""Characters kept before tokenizing; longer texts are cut (and reported truncated) so one huge input
cannot stall a batch. 20k characters is far beyond ``max_length`` tokens anyway."""

VARIANT_FOR_PROVIDER: dict[str, str] = {
    "TensorrtExecutionProvider": "model.qdq.onnx",
    "CUDAExecutionProvider": "model.fp16.onnx",
    "CPUExecutionProvider": "model.onnx",
}
"""Artifact file that each execution provider accelerates: static QDQ INT8 for TensorRT, FP16 for CUDA,
dynamic INT8 (per-channel) for the CPU."""


class ModelLoadError(RuntimeError):
    """The model artifact folder is missing a file, or a file is corrupt; the message says which and what to do."""


class ScoringInputError(ValueError):
    """An input to :meth:`Scorer.predict` is not a non-empty string; the message names its index."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """Scores for one text.

    Attributes:
        topic: one of the 20 topic names (verbatim taxonomy). topic_prob: its softmax probability in [0, 1].
        sentiment: ``negative`` / ``neutral`` / ``positive``.
        sentiment_probs: softmax probabilities ``(neg, neu, pos)``, summing to 1.
        sentiment_score: ``P(pos) - P(neg)`` in [-1, 1].
        model_version: version string of the artifact that produced it.
        truncated: True if the text was cut to ``max_length`` tokens (or ``MAX_CHARS`` characters).
    """

    topic: str
    topic_prob: float
    sentiment: str
    sentiment_probs: tuple[float, float, float]
    sentiment_score: float
    model_version: str
    truncated: bool = False

    def to_dict(self) -> dict:
        """JSON-ready dict (``sentiment_probs`` as a list)."""
        d = asdict(self)
        d["sentiment_probs"] = list(self.sentiment_probs)
        return d


SPINNING_KEYS: tuple[str, ...] = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")
"""ONNX Runtime session config keys that :func:`session_options` sets from ``model.intra_op_spinning``."""


def session_options(intra_op_threads: int = 0, spinning: bool = False) -> Any:
    """The ``onnxruntime.SessionOptions`` the scorer opens its sessions with.

    Args:
        intra_op_threads: intra-op threads (0 = ONNX Runtime's default, one per physical core).
        spinning: ``"1"`` / ``"0"`` for both keys of :data:`SPINNING_KEYS` (idle worker threads busy-wait or
            sleep); see :class:`~finsentry.model.settings.ModelSettings` for why the default is off.

    >>> options = session_options(2, spinning=False)
    >>> options.intra_op_num_threads, options.get_session_config_entry("session.intra_op.allow_spinning")
    (2, '0')
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    for key in SPINNING_KEYS:
        options.add_session_config_entry(key, "1" if spinning else "0")
    return options


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Scorer:
    """Multi-task topic + sentiment scorer over an ONNX artifact. Thread-compatible, not thread-safe per call."""

    def __init__(self, session, tokenizer, labels: dict, folder: Path, variant: str, max_length: int, batch_size: int):
        self.session = session
        self.tokenizer = tokenizer
        self.topic_labels: tuple[str, ...] = tuple(labels["topic"])
        self.sentiment_labels: tuple[str, ...] = tuple(labels["sentiment"])
        self.model_version: str = str(labels.get("model_version", "unknown"))
        self.folder = folder
        self.variant = variant
        self.max_length = max_length
        self.batch_size = batch_size
        self.sort_by_length = True
        """Sort texts by token count before batching (the default; ``False`` only for benchmarks)."""
        self.reference_diff: float | None = None
        """Largest difference from the card's reference logits found at load (None: loaded unverified)."""

    @classmethod
    def load(
        cls,
        folder: str | Path,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
        max_length: int | None = None,
        batch_size: int = 64,
        variant: str | None = None,
        intra_op_spinning: bool = False,
        verify: bool = True,
    ) -> Scorer:
        """Open an artifact folder and verify it against its card.

        Args:
            folder: artifact folder. providers: ONNX Runtime execution providers in preference order
                (default CPU). intra_op_threads: 0 = ONNX Runtime default. max_length: tokens per text
                (default: the value in ``labels.json``). batch_size: texts per session run.
            intra_op_spinning: let idle ONNX Runtime worker threads busy-wait (intra-op and inter-op pools);
                off by default, see :class:`~finsentry.model.settings.ModelSettings`.
            variant: force one file of the folder (e.g. ``model.fp32.onnx`` for evaluation) instead of
                choosing by execution provider.
            verify: check the folder against ``card.json`` (:func:`finsentry.model.verify.verify_loaded`: file
                hashes, label spaces, the reference logits). Only builders of a folder, which write its card
                (export, evaluation, the retraining gate), pass False.

        Raises:
            ModelLoadError: a file is missing or corrupt (the message names it).
            ModelVerificationError: (a ``ModelLoadError``) the folder is not the one its card describes; one
                line naming the file or what differs (:mod:`finsentry.model.verify`).
        """
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        labels_path = folder / "labels.json"
        try:
            labels = json.loads(labels_path.read_text(encoding="utf-8"))
            for task in ("topic", "sentiment"):
                names = labels[task]
                if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                    raise TypeError(f"'{task}' must be a non-empty list of label names")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(
                f"{labels_path}: cannot read the label spaces ({type(exc).__name__}: {exc}); point model.path "
                "(env FINSENTRY_MODEL__PATH) at an artifact folder written by `finsentry model export`"
            ) from exc
        try:
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:
            raise ModelLoadError(f"{folder / 'tokenizer.json'}: cannot load the tokenizer ({exc})") from exc
        max_length = int(max_length or labels.get("max_length", 64))
        tokenizer.enable_truncation(max_length=max_length)
        tokenizer.no_padding()

        wanted = list(providers or ["CPUExecutionProvider"])
        available = set(ort.get_available_providers())
        usable = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        if usable != wanted:
            log.warning("execution providers %s not available here; using %s", sorted(set(wanted) - available), usable)
        variant = variant or next(
            (VARIANT_FOR_PROVIDER[p] for p in usable if (folder / VARIANT_FOR_PROVIDER.get(p, "")).is_file()),
            "model.onnx",
        )
        options = session_options(intra_op_threads, intra_op_spinning)
        session = cls._session(ort, folder / variant, options, usable)
        cls._check_outputs(session, folder / variant, labels)
        granted = session.get_providers()[0]
        if VARIANT_FOR_PROVIDER.get(granted) != variant and variant in ("model.fp16.onnx", "model.qdq.onnx"):
            log.warning("%s was not granted (got %s); falling back to model.onnx", usable[0], granted)
            variant = "model.onnx"
            session = cls._session(ort, folder / variant, options, ["CPUExecutionProvider"])
        scorer = cls(session, tokenizer, labels, folder, variant, max_length, batch_size)
        if verify:
            from finsentry.model.verify import verify_loaded

            scorer.reference_diff = verify_loaded(scorer, labels)
        log.info(
            "loaded %s (version %s) on %s%s",
            folder / variant,
            labels.get("model_version"),
            session.get_providers()[0],
            "" if scorer.reference_diff is None else f", verified against its card ({scorer.reference_diff:.1e})",
        )
        return scorer

    @classmethod
    def from_settings(cls, settings: ModelSettings, folder: str | Path | None = None) -> Scorer:
        """:meth:`load` with every runtime option from ``settings`` (section ``model``).

        Args:
            settings: providers, threads, spinning, max_length, batch_size (and ``path``).
            folder: artifact folder to open instead of ``settings.path`` (e.g. a registry version).

        Raises:
            ModelLoadError: a file is missing or corrupt (the message names it). ModelVerificationError: the
                folder does not match its card (see :meth:`load`).
        """
        return cls.load(
            settings.path if folder is None else folder,
            providers=settings.providers,
            intra_op_threads=settings.intra_op_threads,
            max_length=settings.max_length,
            batch_size=settings.batch_size,
            intra_op_spinning=settings.intra_op_spinning,
        )

    @staticmethod
    def _check_outputs(session, path: Path, labels: dict) -> None:
        """Refuse a graph whose outputs do not match the label spaces of ``labels.json``."""
        shapes = {o.name: o.shape for o in session.get_outputs()}
        for output, task in (("topic_logits", "topic"), ("sentiment_logits", "sentiment")):
            if output not in shapes:
                raise ModelLoadError(
                    f"{path} has no output {output!r} (outputs: {sorted(shapes)}); re-export the model"
                )
            width = shapes[output][-1]
            if isinstance(width, int) and width != len(labels[task]):
                raise ModelLoadError(
                    f"{path} outputs {width} {task} classes but labels.json names {len(labels[task])}; "
                    "the artifact's files do not belong together"
                )

    @staticmethod
    def _session(ort, path: Path, options, providers: list[str]):
        if not path.is_file():
            raise ModelLoadError(f"{path} is missing; run `finsentry model export` or point model.path at an artifact")
        try:
            return ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:
            raise ModelLoadError(f"{path} is not a loadable ONNX model ({type(exc).__name__}: {exc})") from exc

    def _check(self, texts: Sequence[object]) -> list[str]:
        if isinstance(texts, str | bytes):
            raise ScoringInputError("predict() takes a sequence of texts, not one string")
        out = []
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ScoringInputError(f"text {i} is {type(t).__name__}, expected str")
            if not t.strip():
                raise ScoringInputError(f"text {i} is empty or whitespace only")
            try:
                t.encode("utf-8")
            except UnicodeEncodeError:  # lone surrogates (e.g. from surrogateescape decoding) become U+FFFD
                t = t.encode("utf-8", "replace").decode("utf-8")
            out.append(t)
        return out

    def logits(self, texts: Sequence[str], batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[bool]]:
        """Raw logits ``(topic [N, 20] float32, sentiment [N, 3] float32)`` and per-text truncation flags.

        ``batch_size``: texts per session run (default :attr:`batch_size`).

        Raises:
            ScoringInputError: a text is not a non-empty string.
        """
        texts = self._check(texts)
        n = len(texts)
        topic = np.zeros((n, len(self.topic_labels)), dtype=np.float32)
        sent = np.zeros((n, len(self.sentiment_labels)), dtype=np.float32)
        truncated = [len(t) > MAX_CHARS for t in texts]
        encodings = self.tokenizer.encode_batch([t[:MAX_CHARS] for t in texts])
        for i, enc in enumerate(encodings):
            if enc.overflowing:
                truncated[i] = True
        order = sorted(range(n), key=lambda i: len(encodings[i].ids)) if self.sort_by_length else list(range(n))
        batch_size = batch_size or self.batch_size
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                e = encodings[i].ids
                ids[row, : len(e)] = e
                mask[row, : len(e)] = 1
            t, s = self.session.run(["topic_logits", "sentiment_logits"], {"input_ids": ids, "attention_mask": mask})
            topic[idx] = t
            sent[idx] = s
        return topic, sent, truncated

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Score ``texts`` (a list of non-empty strings); returns one :class:`Prediction` each, in input order.

        Raises:
            ScoringInputError: a text is None, not a string, or empty / whitespace only (its index is named).
        """
        if len(texts) == 0:
            return []
        topic_logits, sent_logits, truncated = self.logits(texts)
        tp = _softmax(topic_logits.astype(np.float64))
        sp = _softmax(sent_logits.astype(np.float64))
        out = []
        for i in range(len(texts)):
            ti = int(tp[i].argmax())
            si = int(sp[i].argmax())
            probs = (float(sp[i, 0]), float(sp[i, 1]), float(sp[i, 2]))
            score = probs[2] - probs[0]
            if not math.isfinite(score):  # pragma: no cover - a corrupt model
                raise ModelLoadError(f"model {self.folder} produced non-finite scores")
            out.append(
                Prediction(
                    self.topic_labels[ti],
                    float(tp[i, ti]),
                    self.sentiment_labels[si],
                    probs,
                    score,
                    self.model_version,
                    truncated[i],
                )
            )
        return out
