"""Hot swap: a running scorer picks up a newly promoted model without stopping or losing a message.

:class:`ModelWatcher` runs beside a :class:`~finsentry.ingest.scorer_service.ScorerService`:

1. On start it fixes its read position at the end of ``models.events`` (no consumer group: every scorer sees
   every event), *then* reads the registry's ``current`` pointer, so no promotion can slip between the two.
   If the pointer names another ``model_version`` than the one serving, that version is loaded.
2. Each promote / rollback event names a version; the watcher resolves it to ``<model.registry_dir>/<version>``
   (:func:`resolve_version_folder`) and hands that folder to a background loader thread (the newest request
   wins). Only a registry version name (``v`` + 4 or more digits, :data:`~finsentry.model.registry.VERSION_RE`)
   whose folder lies inside the registry is loaded; anything else (``"version": "../../etc"``, a version folder
   that is a symlink out of the registry) is refused as ``outside_registry``. The event's ``path`` is never
   loaded from: anyone who can write to ``models.events`` could otherwise make every scorer open any folder.
3. The loader opens the artifact with the scorer's settings, which verifies it against its own card as every
   load does (:mod:`finsentry.model.verify`: the sha256 of its model, tokenizer and labels, its label spaces,
   and its CPU INT8 model reproducing the card's 32 reference logits within
   :data:`~finsentry.model.verify.REFERENCE_ATOL`), and checks that its label spaces equal the serving
   model's (or the card's ``declared_label_change`` names exactly the new ones; :func:`verify_artifact`
   runs the same checks on the CPU model alone). Then ``service.swap_model(new)``: the batch
   being scored finishes on the old model, the next batch uses the new one, and every scored message carries
   the ``model_version`` of the model that scored it.
4. A refused artifact is logged (``ERROR refusing model ...: <reason>; still serving <old>``) and counted in
   ``finsentry_model_swap_refusals_total{reason}``; the old model keeps serving.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from finsentry.common.metric_spec import MetricSpec
from finsentry.ingest.consume_loop import ConsumeLoop, LoopConfig, LoopHandler
from finsentry.ingest.model_events import BadModelEvent, parse_event
from finsentry.ingest.topics import MODELS_EVENTS

if TYPE_CHECKING:
    from finsentry.ingest.settings import KafkaSettings
    from finsentry.model.scorer import Scorer
    from finsentry.model.settings import ModelSettings

log = logging.getLogger(__name__)

REFUSAL_REASONS: tuple[str, ...] = (
    "not_found",
    "load_failed",
    "missing_card",
    "hash_mismatch",
    "reference_mismatch",
    "label_space",
    "outside_registry",
)
"""Values of the ``reason`` label of ``finsentry_model_swap_refusals_total``."""


class SwapRefused(RuntimeError):
    """An artifact failed verification; ``reason`` is one of :data:`REFUSAL_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Swappable(Protocol):
    """What the watcher needs from a scorer service: the serving model and a way to replace it."""

    @property
    def model(self) -> Scorer: ...

    def swap_model(self, new: Scorer) -> None: ...


SWAPS = MetricSpec(
    "finsentry_model_swaps_total", "counter", (), "models verified and swapped in by the hot swap", "swaps"
)
REFUSALS = MetricSpec(
    "finsentry_model_swap_refusals_total",
    "counter",
    ("reason",),
    "artifacts the hot swap refused (the old model kept serving), by reason",
    "artifacts",
)
METRICS: tuple[MetricSpec, ...] = (SWAPS, REFUSALS)
"""Every metric of :class:`HotSwapMetrics`, for ``docs/metrics.md``."""


class HotSwapMetrics:
    """Metrics of the hot swap, on the scorer's registry (declared once here)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.swaps = SWAPS.counter(self.registry)
        self.refusals = REFUSALS.counter(self.registry)
        for reason in REFUSAL_REASONS:
            self.refusals.labels(reason=reason)


def resolve_version_folder(registry_dir: Path | str, version: str) -> Path:
    """The artifact folder of registry version ``version``: ``<registry_dir>/<version>``, and nothing else.

    The folder need not exist (the loader then refuses it as ``not_found``); if it exists, it must resolve
    (symlinks followed) to a folder inside the resolved ``registry_dir``.

    >>> resolve_version_folder("/srv/registry", "v0002").as_posix()
    '/srv/registry/v0002'

    Raises:
        SwapRefused: ``outside_registry``: ``version`` is not ``v`` + 4 or more ASCII digits (``/etc``,
            ``../v0001``, ``v12``), or the folder resolves outside the registry.
    """
    from finsentry.model.registry import VERSION_RE

    if not isinstance(version, str) or not version.isascii() or not VERSION_RE.fullmatch(version):
        raise SwapRefused(
            "outside_registry",
            f"version {str(version)[:80]!r} is not a registry version name (v + 4 or more digits); only"
            " <model.registry_dir>/vNNNN is loaded",
        )
    root = Path(registry_dir)
    folder = root / version
    if folder.exists() or folder.is_symlink():
        real, real_root = folder.resolve(), root.resolve()
        if not real.is_relative_to(real_root) or real == real_root:
            raise SwapRefused("outside_registry", f"{folder} resolves to {real}, outside the registry {real_root}")
    return folder


def open_verified(
    folder: Path, serving_labels: tuple[tuple[str, ...], tuple[str, ...]] | None, load: Callable[[Path], Scorer]
) -> Scorer:
    """Open an artifact with ``load`` (a :meth:`Scorer.load` variant, which verifies it against its card) and
    check its label spaces against the serving model's.

    Args:
        folder: artifact folder. serving_labels: ``(topic labels, sentiment labels)`` of the serving model
            (None: nothing to compare with). load: opens ``folder``.

    Raises:
        SwapRefused: ``not_found`` (no such folder), ``load_failed`` (missing / corrupt file),
            ``missing_card`` (no card.json or no reference logits), ``hash_mismatch`` (a file differs from
            the card's sha256), ``reference_mismatch`` (logits or label names differ from the card's),
            ``label_space`` (labels changed without a matching ``declared_label_change``).
    """
    from finsentry.model.scorer import ModelLoadError
    from finsentry.model.verify import ModelVerificationError, read_card

    folder = Path(folder)
    if not folder.is_dir():
        raise SwapRefused("not_found", f"{folder} does not exist")
    try:
        new = load(folder)
    except ModelVerificationError as exc:
        raise SwapRefused(exc.reason, str(exc)) from exc
    except ModelLoadError as exc:
        raise SwapRefused("load_failed", str(exc)) from exc
    new_labels = (new.topic_labels, new.sentiment_labels)
    if serving_labels is not None and tuple(map(tuple, serving_labels)) != new_labels:
        declared = read_card(folder).get("declared_label_change") or {}
        if (tuple(declared.get("topic", ())), tuple(declared.get("sentiment", ()))) != new_labels:
            raise SwapRefused(
                "label_space",
                f"label spaces differ from the serving model's ({len(new_labels[0])} topics, "
                f"{len(new_labels[1])} sentiments) and the card declares no such change",
            )
    return new


def verify_artifact(folder: Path, serving_labels: tuple[tuple[str, ...], tuple[str, ...]] | None) -> float:
    """Check an artifact before serving it (:func:`open_verified` on its CPU ``model.onnx``); returns the largest
    reference-logit difference (float, logit units).

    Raises:
        SwapRefused: see :func:`open_verified`.
    """
    from finsentry.model.scorer import Scorer

    check = open_verified(folder, serving_labels, lambda f: Scorer.load(f, variant="model.onnx"))
    return float(check.reference_diff or 0.0)


class ModelWatcher(LoopHandler):
    """Watches ``models.events`` and the registry pointer; verifies and swaps models into ``service``.

    Reads ``models.events`` with a group-less :class:`~finsentry.ingest.consume_loop.ConsumeLoop` (every
    partition from its end, nothing committed).

    Args:
        service: the scorer service (anything with ``model`` and ``swap_model``).
        kafka: the Kafka connection (``ingest.kafka``) that ``models.events`` is read with.
        model: the ``model`` settings: ``registry_dir`` and the load options of a swapped-in scorer.
        metrics: where to count swaps / refusals (default: on a fresh registry; pass the service's registry).
        poll_ms: ms one poll of ``models.events`` waits.
    """

    def __init__(
        self,
        service: Swappable,
        kafka: KafkaSettings,
        model: ModelSettings,
        metrics: HotSwapMetrics | None = None,
        poll_ms: int = 500,
    ) -> None:
        self.service = service
        self.kafka = kafka
        self.model = model
        self.metrics = metrics or HotSwapMetrics()
        self.poll_ms = poll_ms
        self.swapped: list[str] = []
        """model_version of every model swapped in, in order."""
        self.refused: list[tuple[str, str]] = []
        """(folder, reason) of every refused artifact, in order."""
        self._requests: queue.Queue[Path | None] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ control

    def start(self) -> ModelWatcher:
        """Start the event reader and the loader threads; returns once the read position is fixed (<= 30 s)."""
        self._threads = [
            threading.Thread(target=self._load_loop, name="hot-swap-loader", daemon=True),
            threading.Thread(target=self._event_loop, name="hot-swap-events", daemon=True),
        ]
        for t in self._threads:
            t.start()
        self._ready.wait(30)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop both threads (a load in progress finishes first); waits up to ``timeout_s`` seconds each."""
        self._stop.set()
        self._requests.put(None)
        for t in self._threads:
            t.join(timeout_s)

    def request(self, folder: Path) -> None:
        """Ask the loader to verify and swap in the artifact at ``folder`` (thread-safe, returns at once)."""
        self._requests.put(Path(folder))

    # ------------------------------------------------------------------ threads

    def _event_loop(self) -> None:
        loop: ConsumeLoop | None = ConsumeLoop(
            LoopConfig(
                name="hot-swap",
                topics=(MODELS_EVENTS,),
                group_id=None,
                client_id="finsentry-hot-swap",
                poll_ms=self.poll_ms,
                produce=False,
            ),
            self.kafka,
            self,
        )
        try:
            loop.open()  # no group: every partition, its end resolved now, before the pointer is read
        except KafkaError as exc:
            log.error("hot swap cannot read %s (%s); only the registry pointer is checked", MODELS_EVENTS, exc)
            loop = None
        finally:
            self._check_pointer()
            self._ready.set()
        if loop is not None:
            try:
                loop.serve(self._stop)
            finally:
                loop.close()

    def process(self, batch: list[Any], producer: Any) -> None:
        """Act on each ``models.events`` record of a polled batch (a bad one is logged and ignored)."""
        for record in batch:
            self._on_event(record.value)

    def _check_pointer(self) -> None:
        from finsentry.model.registry import Registry, RegistryError

        try:
            current = Registry(self.model.registry_dir).current()
        except RegistryError as exc:
            log.warning("registry pointer unreadable: %s", exc)
            return
        if current is None:
            return
        if current.model_version != self.service.model.model_version:
            try:
                folder = resolve_version_folder(self.model.registry_dir, current.name)
            except SwapRefused as exc:
                self._refuse(str(current.path), exc)
                return
            log.info("registry points at %s (%s); loading it", current.name, current.model_version)
            self.request(folder)

    def _on_event(self, value: bytes | None) -> None:
        try:
            event = parse_event(value)
        except BadModelEvent as exc:
            log.warning("ignoring a bad %s record: %s", MODELS_EVENTS, exc)
            return
        if event.model_version and event.model_version == self.service.model.model_version:
            log.info("%s event for %s: already serving it", event.action, event.model_version)
            return
        try:
            folder = resolve_version_folder(self.model.registry_dir, event.version)
        except SwapRefused as exc:
            self._refuse(repr(event.version[:80]), exc)
            return
        if event.path and event.path != str(folder.resolve()):
            log.info("%s event names path %r; loading from the registry's own %s", event.action, event.path, folder)
        log.info("%s event: %s (%s) from %s", event.action, event.version, event.model_version, folder)
        self.request(folder)

    def _refuse(self, what: str, exc: SwapRefused) -> None:
        """Count and log a refused artifact (``what``: its folder, or the version an event named)."""
        self.metrics.refusals.labels(reason=exc.reason).inc()
        self.refused.append((what, exc.reason))
        log.error(
            "refusing model %s: %s (%s); still serving %s", what, exc, exc.reason, self.service.model.model_version
        )

    def _load_loop(self) -> None:
        while True:
            item = self._requests.get()
            try:
                while True:  # newest request wins
                    try:
                        newer = self._requests.get_nowait()
                    except queue.Empty:
                        break
                    self._requests.task_done()
                    item = newer
                    if item is None:
                        break
                if item is None:
                    return
                self._load(item)
            except Exception:  # never let the loader die; the old model keeps serving
                log.exception("hot swap of %s failed", item)
            finally:
                self._requests.task_done()

    def _load(self, folder: Path) -> None:
        from finsentry.model.scorer import Scorer

        old = self.service.model
        try:
            new = open_verified(
                folder, (old.topic_labels, old.sentiment_labels), lambda f: Scorer.from_settings(self.model, f)
            )
        except SwapRefused as exc:
            self._refuse(str(folder), exc)
            return
        self.service.swap_model(new)
        self.metrics.swaps.inc()
        self.swapped.append(new.model_version)
        log.info(
            "model %s verified (reference logits within %.1e) and queued to replace %s from the next batch",
            new.model_version,
            new.reference_diff or 0.0,
            old.model_version,
        )


def attach(service: Any, kafka: KafkaSettings, model: ModelSettings) -> ModelWatcher:
    """Start a :class:`ModelWatcher` for a ``ScorerService``, counting on the service's metrics registry."""
    return ModelWatcher(service, kafka, model, HotSwapMetrics(service.metrics.registry)).start()


__all__ = [
    "REFUSAL_REASONS",
    "HotSwapMetrics",
    "ModelWatcher",
    "SwapRefused",
    "attach",
    "open_verified",
    "resolve_version_folder",
    "verify_artifact",
]
