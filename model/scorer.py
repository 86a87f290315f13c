"""Torch-free runtime scoring: ONNX Runtime + tokenizers.

``Scorer.load(folder)`` opens a model artifact folder (``model.onnx`` CPU INT8, optional ``model.fp16.onnx``
for the CUDA execution provider and ``model.qdq.onnx`` for TensorRT, ``tokenizer.json``, ``labels.json``,
``card.json``), picks the variant for the execution provider ONNX Runtime actually granted and verifies the
folder against its card (file hashes, label spaces, reference logits: :mod:`finsentry.model.verify`).
``predict(texts)`` returns one :class:`Prediction` per text, in input order. Texts are sorted by length
before batching, so each batch is padded only to its own longest text (padding every batch to the global max
cost ~44% here), and run :data:`DEFAULT_BATCH_SIZE` (16) at a time: a service call of 64 texts in arrival order
becomes four runs of similar lengths instead of one padded to the longest of the 64, about half the padded
tokens on headlines (``benchmarks/model_speed.py`` measures the sub-batch sizes; setting ``model.batch_size``).
With the static INT8 model a text's probabilities do not depend on its batch, so the split changes no figure.

Long texts: the model reads ``max_length`` tokens at a time (a window: ``[CLS]``, up to ``max_length - 2``
text tokens, ``[SEP]``). A text longer than one window is scored window by window, consecutive windows
overlapping by :func:`chunk_stride` tokens (``max_length // 4``, 16 at 64), on at most ``max_chunks`` windows
(setting ``model.max_chunks``, default :data:`DEFAULT_MAX_CHUNKS`). Its probabilities are the **softmax of the
windows' logits averaged with weights = each window's number of text tokens** (:func:`combine_windows`; tokens
in an overlap count in both windows), for the topic and the sentiment alike; the labels are the argmax of those
probabilities and ``sentiment_score`` = P(pos) - P(neg) of them. Averaging logits (a token-weighted geometric
mean of the windows' probabilities, renormalized) lets a window the model is sure of outweigh an unsure one of
the same length, and moves a long text's log-odds exactly as a short text's when a model's output bias
changes (the hot swap's tests rely on it). A text that fits one window
is scored exactly as before: the first windows of all texts are batched together as always, and the further
windows of long texts run in batches of their own, so they never change a short text's INT8 activation scales.
``Prediction.chunks`` says how many windows were scored; ``Prediction.truncated`` that some of the text was
not scored at all (beyond :data:`MAX_CHARS` characters or beyond ``max_chunks`` windows).

Calibration: ``labels.json`` may carry ``"temperature": {"sentiment": T, "topic": T}`` (temperature scaling
fitted on the dev sets, :func:`finsentry.model.evaluate.fit_temperatures`); each task's logits (a long text's
combined logits) are divided by its ``T`` before the softmax, so probabilities and ``sentiment_score`` are
calibrated while the labels (argmax) do not change. An absent key, or an absent task, is ``T = 1``.
:meth:`Scorer.logits` and :meth:`Scorer.window_scores` return raw logits (the card's reference logits too).
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
cannot stall a batch. 20k characters (~4,000 tokens) is far beyond ``max_chunks`` windows anyway."""

DEFAULT_MAX_CHUNKS = 16
"""Default of ``model.max_chunks``: windows scored per text at most (16 windows of 64 tokens overlapping by 16
cover ~750 text tokens, ~3,500 characters of English news); the scoring cost of one text grows linearly
with its windows, so the cap bounds what one huge item costs a micro-batch."""

DEFAULT_BATCH_SIZE = 16
"""Texts (windows) per ONNX Runtime run inside :meth:`Scorer.predict` (setting ``model.batch_size``): small
enough that length-sorted runs carry little padding, large enough that a run's fixed cost stays small (module
doc; the sweep in ``benchmarks/model_speed.py``)."""

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
        sentiment_probs: softmax probabilities ``(neg, neu, pos)``, summing to 1. Probabilities are those of
            the logits divided by ``labels.json``'s temperature of the task (module doc; 1 when absent).
        sentiment_score: ``P(pos) - P(neg)`` in [-1, 1].
        model_version: version string of the artifact that produced it.
        truncated: True if part of the text was not scored: it was cut at :data:`MAX_CHARS` characters, or
            it needed more than ``max_chunks`` windows of ``max_length`` tokens (the rest was not read).
        chunks: windows of ``max_length`` tokens scored and combined (1: the text fits one window); see the
            module doc for the combination rule.
    """

    topic: str
    topic_prob: float
    sentiment: str
    sentiment_probs: tuple[float, float, float]
    sentiment_score: float
    model_version: str
    truncated: bool = False
    chunks: int = 1

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


def chunk_stride(max_length: int) -> int:
    """Tokens two consecutive windows of a long text share: ``max_length // 4``.

    >>> chunk_stride(64), chunk_stride(8)
    (16, 2)
    """
    return max_length // 4


def combine_windows(logits: np.ndarray, tokens: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """A long text's probabilities from its windows' logits: softmax of their mean weighted by text tokens.

    Args:
        logits: ``[k, C]`` one row of logits per window (float32 or float64).
        tokens: ``[k]`` text tokens per window (special tokens not counted), all > 0.
        temperature: the combined logits are divided by it before the softmax (module doc; 1 = none).

    Returns:
        ``[C]`` float64 probabilities, summing to 1.

    >>> combine_windows(np.array([[0.0, 2.0, 0.0], [2.0, 0.0, 0.0]]), np.array([62, 31])).round(6).tolist()
    [0.288921, 0.562742, 0.148337]
    """
    weights = np.asarray(tokens, dtype=np.float64)
    mean = (np.asarray(logits, dtype=np.float64) * weights[:, None]).sum(axis=0) / weights.sum()
    return _softmax(mean[None, :] / temperature)[0]


TEMPERATURE_KEY = "temperature"
"""Key of ``labels.json`` holding the per-task temperatures (module doc)."""


def label_temperatures(labels: dict, path: Path | str = "labels.json") -> dict[str, float]:
    """Per-task temperatures ``{"topic": T, "sentiment": T}`` of a parsed ``labels.json`` (1.0 where absent).

    Raises:
        ModelLoadError: the ``temperature`` entry is not an object of positive finite numbers keyed by task
            (one line naming ``path``).

    >>> label_temperatures({"temperature": {"sentiment": 1.5}})
    {'topic': 1.0, 'sentiment': 1.5}
    """
    raw = labels.get(TEMPERATURE_KEY, {})

    def positive(value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0

    tasks = ("topic", "sentiment")
    if not (isinstance(raw, dict) and set(raw) <= set(tasks) and all(positive(v) for v in raw.values())):
        raise ModelLoadError(
            f'{path}: \'{TEMPERATURE_KEY}\' must be {{"sentiment": T, "topic": T}} with each T a positive finite '
            f"number; got {json.dumps(raw)[:120]}"
        )
    return {task: float(raw.get(task, 1.0)) for task in tasks}


def _text_tokens(encoding: Any) -> int:
    """Text tokens of one window (a ``tokenizers.Encoding``): its ids less the special tokens."""
    return len(encoding.ids) - sum(encoding.special_tokens_mask)


@dataclass(frozen=True, slots=True)
class WindowScores:
    """The windows of one text as :meth:`Scorer.window_scores` scored them.

    Attributes:
        topic_logits: ``[k, T]`` float32 logits per window (T topics). sentiment_logits: ``[k, 3]`` float32.
        tokens: ``[k]`` int64, text tokens per window (the weights of :func:`combine_windows`).
        truncated: part of the text was not scored (see :attr:`Prediction.truncated`).
    """

    topic_logits: np.ndarray
    sentiment_logits: np.ndarray
    tokens: np.ndarray
    truncated: bool


class Scorer:
    """Multi-task topic + sentiment scorer over an ONNX artifact. Thread-compatible, not thread-safe per call.

    Texts longer than one window of ``max_length`` tokens are scored in overlapping windows and combined: the
    softmax of the windows' logits averaged with weights = their text tokens (module doc, :func:`combine_windows`).

    Args:
        session: an ``onnxruntime.InferenceSession`` with inputs ``input_ids`` / ``attention_mask`` (int64
            ``[batch, seq]``) and outputs ``topic_logits`` / ``sentiment_logits`` (float32 ``[batch, C]``).
        tokenizer: a ``tokenizers.Tokenizer``; its truncation is set here (``max_length``, stride
            :func:`chunk_stride`) and its padding turned off. labels: the parsed ``labels.json``.
        folder: the artifact folder. variant: the model file of ``folder`` the session runs.
        max_length: tokens per window. batch_size: windows per session run.
        max_chunks: windows scored per text at most (>= 1; 1 = the first window only).
    """

    def __init__(
        self,
        session: Any,
        tokenizer: Any,
        labels: dict,
        folder: Path,
        variant: str,
        max_length: int,
        batch_size: int,
        max_chunks: int = DEFAULT_MAX_CHUNKS,
    ) -> None:
        self.session = session
        self.tokenizer = tokenizer
        self.topic_labels: tuple[str, ...] = tuple(labels["topic"])
        self.sentiment_labels: tuple[str, ...] = tuple(labels["sentiment"])
        self.model_version: str = str(labels.get("model_version", "unknown"))
        self.temperature: dict[str, float] = label_temperatures(labels, Path(folder) / "labels.json")
        """Per-task temperature dividing the logits before the softmax in :meth:`predict` (module doc)."""
        self.folder = folder
        self.variant = variant
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_chunks = max(1, int(max_chunks))
        self.sort_by_length = True
        """Sort texts by token count before batching (the default; ``False`` only for benchmarks)."""
        self.reference_diff: float | None = None
        """Largest difference from the card's reference logits found at load (None: loaded unverified)."""
        tokenizer.enable_truncation(max_length=max_length, stride=chunk_stride(max_length))
        tokenizer.no_padding()

    @classmethod
    def load(
        cls,
        folder: str | Path,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
        max_length: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        variant: str | None = None,
        intra_op_spinning: bool = False,
        max_chunks: int = DEFAULT_MAX_CHUNKS,
        verify: bool = True,
    ) -> Scorer:
        """Open an artifact folder and verify it against its card.

        Args:
            folder: artifact folder. providers: ONNX Runtime execution providers in preference order
                (default CPU). intra_op_threads: 0 = ONNX Runtime default. max_length: tokens per window
                (default: the value in ``labels.json``). batch_size: windows per session run.
            intra_op_spinning: let idle ONNX Runtime worker threads busy-wait (intra-op and inter-op pools);
                off by default, see :class:`~finsentry.model.settings.ModelSettings`.
            variant: force one file of the folder (e.g. ``model.fp32.onnx`` for evaluation) instead of
                choosing by execution provider.
            max_chunks: windows scored per text at most (module doc).
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
        scorer = cls(session, tokenizer, labels, folder, variant, max_length, batch_size, max_chunks)
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
            settings: providers, threads, spinning, max_length, batch_size, max_chunks (and ``path``).
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
            max_chunks=settings.max_chunks,
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

    def _encode(self, texts: Sequence[object]) -> tuple[list[Any], list[bool]]:
        """Tokenized texts (first window each, further windows in ``.overflowing``) and the MAX_CHARS cut flags."""
        checked = self._check(texts)
        cut = [len(t) > MAX_CHARS for t in checked]
        return self.tokenizer.encode_batch([t[:MAX_CHARS] for t in checked]), cut

    def _run(self, rows: Sequence[Sequence[int]], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``(topic [N, T], sentiment [N, S])`` float32 of token-id rows, batched as the module doc says."""
        n = len(rows)
        topic = np.zeros((n, len(self.topic_labels)), dtype=np.float32)
        sent = np.zeros((n, len(self.sentiment_labels)), dtype=np.float32)
        order = sorted(range(n), key=lambda i: len(rows[i])) if self.sort_by_length else list(range(n))
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            width = max(len(rows[i]) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                e = rows[i]
                ids[row, : len(e)] = e
                mask[row, : len(e)] = 1
            t, s = self.session.run(["topic_logits", "sentiment_logits"], {"input_ids": ids, "attention_mask": mask})
            topic[idx] = t
            sent[idx] = s
        return topic, sent

    def logits(self, texts: Sequence[str], batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray, list[bool]]:
        """Raw logits of each text's first window: ``(topic [N, T] float32, sentiment [N, S] float32, cut)``.

        ``cut[i]`` is True when text ``i`` did not fit one window (or exceeded :data:`MAX_CHARS`); only its
        first ``max_length`` tokens are in these logits (evaluation, reference logits; :meth:`predict` scores
        the rest). ``batch_size``: texts per session run (default :attr:`batch_size`).

        Raises:
            ScoringInputError: a text is not a non-empty string.
        """
        encodings, cut = self._encode(texts)
        topic, sent = self._run([e.ids for e in encodings], batch_size or self.batch_size)
        return topic, sent, [c or bool(e.overflowing) for c, e in zip(cut, encodings, strict=True)]

    def _scores(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[bool], dict[int, WindowScores], list]:
        """First-window logits ``(topic [N, T], sentiment [N, S])`` float32, the truncated flags, the
        :class:`WindowScores` of every text longer than one window (by index) and the encodings."""
        encodings, truncated = self._encode(texts)
        topic, sent = self._run([e.ids for e in encodings], self.batch_size)
        windows: dict[int, list[Any]] = {}
        for i, enc in enumerate(encodings):
            overflowing = enc.overflowing
            if overflowing:
                truncated[i] = truncated[i] or len(overflowing) >= self.max_chunks
                if self.max_chunks > 1:
                    windows[i] = [enc, *overflowing[: self.max_chunks - 1]]
        long: dict[int, WindowScores] = {}
        if windows:  # further windows in batches of their own (module doc)
            et, es = self._run([w.ids for ws in windows.values() for w in ws[1:]], self.batch_size)
            at = 0
            for i, ws in windows.items():
                k = len(ws) - 1
                long[i] = WindowScores(
                    np.vstack([topic[i : i + 1], et[at : at + k]]),
                    np.vstack([sent[i : i + 1], es[at : at + k]]),
                    np.array([_text_tokens(w) for w in ws], dtype=np.int64),
                    truncated[i],
                )
                at += k
        return topic, sent, truncated, long, encodings

    def window_scores(self, texts: Sequence[str]) -> list[WindowScores]:
        """Per-window logits of each text, as :meth:`predict` combines them (one row for a short text).

        Raises:
            ScoringInputError: a text is None, not a string, or empty / whitespace only (its index is named).
        """
        if len(texts) == 0:
            return []
        topic, sent, truncated, long, encodings = self._scores(texts)
        return [
            long.get(i) or WindowScores(topic[i : i + 1], sent[i : i + 1], np.array([_text_tokens(e)]), truncated[i])
            for i, e in enumerate(encodings)
        ]

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Score ``texts`` (a list of non-empty strings); returns one :class:`Prediction` each, in input order.

        A text longer than one window is scored on up to ``max_chunks`` overlapping windows whose logits are
        averaged, weighted by each window's text tokens, then softmaxed (module doc); a text that fits one
        window gets exactly its first-window scores. Each task's logits are divided by its
        :attr:`temperature` before the softmax.

        Raises:
            ScoringInputError: a text is None, not a string, or empty / whitespace only (its index is named).
            ModelLoadError: the model produced non-finite scores (a corrupt model).
        """
        if len(texts) == 0:
            return []
        topic, sent, truncated, long, _ = self._scores(texts)
        t_topic, t_sent = self.temperature["topic"], self.temperature["sentiment"]
        tp = _softmax(topic.astype(np.float64) / t_topic)
        sp = _softmax(sent.astype(np.float64) / t_sent)
        for i, w in long.items():
            tp[i] = combine_windows(w.topic_logits, w.tokens, t_topic)
            sp[i] = combine_windows(w.sentiment_logits, w.tokens, t_sent)
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
                    len(long[i].tokens) if i in long else 1,
                )
            )
        return out
