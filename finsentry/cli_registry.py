"""Retraining verbs: ``finsentry labels import|stats|consume``, ``finsentry model retrain|list|promote|rollback``.

Glue only: the label store, registry, retrain and gate live in ``model/``; the labels consumer and the
``models.events`` publisher in ``ingest/``. Exit codes of ``model retrain``: 0 promoted (or passed with
``--no-promote``), 1 error, 3 nothing new to train on, 4 challenger rejected by the gate (kept in the
registry), 5 another retrain is running. Of ``model list|promote|rollback``: 0 done, 1 the registry change
stands but publishing it on models.events failed, 2 a refused request or a damaged registry (the message
names the file and how to repair it; ``list`` still prints every version it can read).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from finsentry.cli_model import model_app
from finsentry.cli_paths import nonempty_path
from finsentry.cli_settings import settings_from
from finsentry.settings import Settings

labels_app = typer.Typer(
    help="Analysts' labels for retraining: import, stats, consume news.labels.", no_args_is_help=True
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _publish(settings: Settings, events: list[dict[str, Any]], publish: bool) -> None:
    """Publish registry events on models.events; exit 1 with a way out if the broker does not acknowledge."""
    if not publish:
        if events:
            typer.echo("not published on models.events (--no-publish): scorers pick it up on restart", err=True)
        return
    from kafka.errors import KafkaError

    from finsentry.ingest.model_events import publish_event

    for event in events:
        try:
            partition, offset = publish_event(settings.ingest.kafka, event)
        except KafkaError as exc:
            raise _fail(
                f"{event['action']} of {event['version']} is done in the registry, but publishing it on models.events"
                f" at {settings.ingest.kafka.bootstrap_servers} failed ({type(exc).__name__}: {exc}); running scorers"
                f" load it on restart, or run `finsentry model promote {event['version']}` again to re-publish"
            ) from exc
        typer.echo(f"published {event['action']} of {event['version']} on models.events ({partition}:{offset})")


# ---------------------------------------------------------------------------------------------- labels


@labels_app.command("import")
def labels_import(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            parser=nonempty_path("FILE"), help="CSV (header row) or JSONL file: id?, text, topic?, sentiment?, ..."
        ),
    ],
    labeler: Annotated[str | None, typer.Option(help="labeler for rows without one")] = None,
    labeled_at: Annotated[
        str | None, typer.Option(help="ISO-8601 time with zone for rows without labeled_at (default: now)")
    ] = None,
) -> None:
    """Validate and store a file of labels; rejected rows are listed and kept under <labels_dir>/rejected/.

    Exit 0 if every row was stored, 1 if some were rejected (the others are stored), 2 on a bad file or a bad
    --labeled-at (checked before any row is read).
    """
    from pydantic import AwareDatetime, TypeAdapter, ValidationError

    from finsentry.model.label_store import LabelStore, read_label_file

    settings = settings_from(ctx)
    if labeled_at is not None:
        try:
            TypeAdapter(AwareDatetime).validate_python(labeled_at)
        except ValidationError as exc:
            raise _fail(
                f"--labeled-at {labeled_at!r} is not an ISO-8601 time with a zone ({exc.errors()[0]['msg']}); "
                "write e.g. 2026-11-29T10:00:00Z",
                2,
            ) from exc
    defaults: dict[str, Any] = {"labeled_at": labeled_at or datetime.now(UTC).isoformat()}
    if labeler:
        defaults["labeler"] = labeler
    try:
        result = read_label_file(file, defaults)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc), 2) from exc
    store = LabelStore(settings.model.retrain.labels_dir)
    store.append(result.accepted, [f"file:{file.name}"] * len(result.accepted))
    kept = store.write_rejected(file.name, result.rejected)
    typer.echo(f"stored {len(result.accepted)} labels from {file} in {store.root}")
    if result.rejected:
        for line, _row, message in result.rejected[:20]:
            typer.echo(f"  {file}:{line}: invalid_label: {message}", err=True)
        more = len(result.rejected) - 20
        typer.echo(
            f"rejected {len(result.rejected)} rows{f' ({more} more not shown)' if more > 0 else ''}; kept in {kept}",
            err=True,
        )
        raise typer.Exit(1)


@labels_app.command("stats")
def labels_stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print the counts as JSON")] = False,
) -> None:
    """Counts per label, per labeler, conflicts, and labels new since the last retrain."""
    from finsentry.model.label_store import LabelStore, label_stats
    from finsentry.model.registry import Registry
    from finsentry.model.retrain import labels_cutoff

    settings = settings_from(ctx)
    store = LabelStore(settings.model.retrain.labels_dir)
    stats = label_stats(store.read(), labels_cutoff(Registry(settings.model.registry_dir)))
    if as_json:
        typer.echo(json.dumps(stats, indent=1))
        return
    typer.echo(f"{stats['rows']} label rows, {stats['items']} items, {stats['conflicts']} items with conflicting votes")
    since = stats["new_since"] or "the start (no model trained on labels yet)"
    typer.echo(f"new since the last retrain ({since}): {stats['new_rows']} rows, {stats['new_items']} items")
    for title, key in (("topic", "per_topic"), ("sentiment", "per_sentiment"), ("labeler (rows)", "per_labeler")):
        typer.echo(f"per {title}:")
        for name, n in sorted(stats[key].items(), key=lambda kv: -kv[1]):
            typer.echo(f"  {n:7d}  {name}")


@labels_app.command("consume")
def labels_consume(
    ctx: typer.Context,
    group_id: Annotated[str, typer.Option(help="consumer group")] = "finsentry-labels",
    max_seconds: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: until Ctrl-C)")
    ] = None,
) -> None:
    """Consume news.labels into the label store (bad labels -> news.dlq, reason invalid_label) until SIGINT/SIGTERM."""
    import signal
    import threading

    from finsentry.ingest.labels_consumer import LabelsConsumer
    from finsentry.model.label_store import LabelStore

    settings = settings_from(ctx)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    consumer = LabelsConsumer(LabelStore(settings.model.retrain.labels_dir), settings.ingest.kafka, group_id)
    stats = consumer.run(stop, max_seconds)
    typer.echo(f"consumed {stats.consumed}, stored {stats.stored}, dead letters {dict(stats.dead_letters)}", err=True)


# ---------------------------------------------------------------------------------------------- model


def retrain_cmd(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            parser=nonempty_path("--config"),
            help="recipe YAML (default: the champion's own recipe from its card)",
        ),
    ] = None,
    promote: Annotated[bool, typer.Option(help="promote a challenger that passes the gate")] = True,
    publish: Annotated[bool, typer.Option(help="publish promotions on models.events")] = True,
    progress: Annotated[bool, typer.Option(help="show training progress bars")] = True,
) -> None:
    """Train a challenger on the base data + stored labels, gate it against the current model, register it.

    Exit codes: 0 promoted / passed, 1 error, 3 nothing new, 4 rejected by the gate (kept), 5 already running.
    """
    from finsentry.model.registry import RegistryBusy
    from finsentry.model.retrain import EXIT_BUSY, EXIT_NOTHING_NEW, NothingNew, describe, retrain
    from finsentry.model.train_config import TrainConfig

    settings = settings_from(ctx)
    recipe = None
    if config is not None:
        try:
            recipe = TrainConfig.from_yaml(config)
        except ValueError as exc:
            raise _fail(str(exc), 2) from exc
    try:
        result = retrain(settings.model, recipe=recipe, promote=promote, progress=progress)
    except RegistryBusy as exc:
        raise _fail(str(exc), EXIT_BUSY) from exc
    except NothingNew as exc:
        raise _fail(str(exc), EXIT_NOTHING_NEW) from exc
    typer.echo(describe(result))
    _publish(settings, result.events, publish)
    raise typer.Exit(result.exit_code)


def list_cmd(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False
) -> None:
    """Registered versions, oldest first; `*` marks the current one. Exit 2 (after the list) if the registry is
    damaged: a registry.json that is not an object, a `current` that is not a symlink to a version."""
    from finsentry.model.registry import Registry, RegistryError
    from finsentry.model.retrain import read_card

    settings = settings_from(ctx)
    registry = Registry(settings.model.registry_dir)
    problems: list[str] = []
    try:
        current = registry.current()
    except RegistryError as exc:
        current, problems = None, [str(exc)]
    rows = []
    for v in registry.versions():
        if v.problem is not None:
            problems.append(v.problem)
        card = read_card(v.path)
        head = card.get("headline") if isinstance(card, dict) else None
        head = head if isinstance(head, dict) else {}
        gate = v.info.get("gate")
        rows.append(
            {
                "version": v.name,
                "current": current is not None and v.name == current.name,
                "status": v.status,
                "model_version": v.model_version,
                "created_at": v.info.get("created_at"),
                "decision": gate.get("decision") if isinstance(gate, dict) else None,
                "fpb_test_macro_f1": head.get("fpb_test_macro_f1"),
                "topic_valid_accuracy": head.get("topic_valid_accuracy"),
                "sentiment_valid_accuracy": head.get("sentiment_valid_accuracy"),
            }
        )
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
    elif not rows:
        typer.echo(f"no versions in {registry.root}; `finsentry model retrain` imports model.path as v0001")
    else:
        _print_versions(rows)
    if problems:
        for problem in problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)


def _print_versions(rows: list[dict[str, Any]]) -> None:
    """The table of ``model list``."""
    typer.echo(f"{'':2}{'version':8} {'status':10} {'model_version':22} {'created (UTC)':25} fpbF1  topicAcc sentAcc")
    for r in rows:
        figures = " ".join(
            f"{r[k]:.4f}" if isinstance(r[k], float) else "   -  "
            for k in ("fpb_test_macro_f1", "topic_valid_accuracy", "sentiment_valid_accuracy")
        )
        typer.echo(
            f"{'*' if r['current'] else ' ':2}{r['version']:8} {r['status']:10} {str(r['model_version']):22} "
            f"{str(r['created_at']):25} {figures}"
        )


def promote_cmd(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="version folder name, e.g. v0003")],
    force: Annotated[bool, typer.Option(help="also promote a version the gate rejected")] = False,
    publish: Annotated[bool, typer.Option(help="publish the event on models.events")] = True,
) -> None:
    """Point `current` at VERSION (atomic rename) and publish the event on models.events.

    VERSION must hold model.onnx, tokenizer.json, labels.json and card.json and open with the scorer; --force
    waives only the status. Exit 0 done, 1 publishing failed (the pointer moved), 2 refused.
    """
    from finsentry.model.registry import Registry, RegistryError

    settings = settings_from(ctx)
    try:
        event = Registry(settings.model.registry_dir).promote(version, force=force, check=_loads(settings))
    except RegistryError as exc:
        raise _fail(str(exc), 2) from exc
    typer.echo(f"current -> {event['version']} ({event['model_version']}), was {event['previous']}")
    _publish(settings, [event], publish)


def rollback_cmd(
    ctx: typer.Context,
    publish: Annotated[bool, typer.Option(help="publish the event on models.events")] = True,
) -> None:
    """Point `current` back at the version served before it and publish the event on models.events.

    The earlier version must be complete and open with the scorer. Exit 0 done, 1 publishing failed, 2 refused.
    """
    from finsentry.model.registry import Registry, RegistryError

    settings = settings_from(ctx)
    try:
        event = Registry(settings.model.registry_dir).rollback(check=_loads(settings))
    except RegistryError as exc:
        raise _fail(str(exc), 2) from exc
    typer.echo(f"current -> {event['version']} ({event['model_version']}), was {event['previous']}")
    _publish(settings, [event], publish)


def _loads(settings: Settings):
    """A ``check`` for :meth:`Registry.promote`: the version folder must open with the torch-free scorer."""

    def check(folder: Path) -> None:
        from finsentry.model.registry import RegistryError
        from finsentry.model.scorer import ModelLoadError, Scorer

        try:
            Scorer.from_settings(settings.model, folder=folder)
        except (ModelLoadError, OSError, ValueError) as exc:
            raise RegistryError(
                f"{folder.name} does not load, so `current` was not moved: {' '.join(str(exc).split())}"
            ) from exc

    return check


def register(app: typer.Typer) -> None:
    """Add ``labels ...`` to the app and ``retrain``, ``list``, ``promote``, ``rollback`` to ``model ...``."""
    app.add_typer(labels_app, name="labels")
    model_app.command("retrain")(retrain_cmd)
    model_app.command("list")(list_cmd)
    model_app.command("promote")(promote_cmd)
    model_app.command("rollback")(rollback_cmd)
