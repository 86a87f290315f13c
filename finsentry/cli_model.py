"""CLI verbs of the model room: ``finsentry model train|export|eval|build|tune`` and ``finsentry score``."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from finsentry.cli_settings import settings_from
from finsentry.common.paths import REPO_ROOT
from finsentry.common.textfiles import MAX_JSON_DEPTH, kind_of

model_app = typer.Typer(
    help="The model: train, export, eval, tune, build, retrain (need the train extra); list, promote, rollback.",
    no_args_is_help=True,
)

DEFAULT_CONFIG = REPO_ROOT / "model" / "configs" / "shipped.yaml"


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _train_config(path: Path):
    from finsentry.model.train_config import TrainConfig

    try:
        return TrainConfig.from_yaml(path)
    except ValueError as exc:
        raise _fail(str(exc)) from exc


@model_app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Option("--config", help="training recipe YAML")] = DEFAULT_CONFIG,
    out: Annotated[Path, typer.Option(help="run folder: checkpoints, log, tokenizer")] = Path("runs/train"),
) -> None:
    """Fine-tune the multi-task model; writes epoch<N>.pt, best.pt and train_log.jsonl into OUT."""
    from finsentry.model.train import train

    best = train(_train_config(config), out)
    typer.echo(json.dumps(best, indent=2))


@model_app.command("export")
def export_cmd(
    checkpoint: Annotated[Path, typer.Option(help="checkpoint written by `model train` (best.pt)")],
    out: Annotated[Path, typer.Option(help="artifact folder to write")],
    version: Annotated[str, typer.Option(help="model_version recorded in labels.json and every scored message")],
    gpu_variants: Annotated[
        bool, typer.Option(help="also write model.fp16.onnx (CUDA) and model.qdq.onnx (TensorRT)")
    ] = True,
) -> None:
    """Export a checkpoint to ONNX: FP32, CPU dynamic INT8, GPU FP16 and static QDQ INT8 variants.

    Fails (exit 1) if INT8 disagrees with FP32 on more than 1% of FPB test sentences.
    """
    from finsentry.model.datasets import load_examples
    from finsentry.model.export import ExportParityError, export_checkpoint

    if not checkpoint.is_file():
        raise _fail(f"checkpoint {checkpoint} not found; train one with `finsentry model train`")
    try:
        result = export_checkpoint(
            checkpoint,
            out,
            version,
            parity_texts=[e.text for e in load_examples("fpb_test")],
            calibration_texts=[e.text for e in load_examples("fpb_dev", 128) + load_examples("topic_dev", 128)],
            gpu_variants=gpu_variants,
        )
    except ExportParityError as exc:
        raise _fail(str(exc), 1) from exc
    typer.echo(json.dumps(result, indent=2))


@model_app.command("requantize")
def requantize_cmd(
    source: Annotated[Path, typer.Option(help="artifact folder with a dynamic INT8 model.onnx")],
    out: Annotated[Path, typer.Option(help="artifact folder to write")],
    version: Annotated[str, typer.Option(help="model_version recorded in labels.json and every scored message")],
) -> None:
    """Re-quantize an artifact's model with static INT8 (no training): same weights, batch-independent scores.

    Writes model.onnx (static INT8, the first recipe within 1% of FP32 on dev rows), labels.json,
    tokenizer.json, then evaluates and writes the card. Exit 1 if no recipe passes.
    """
    from finsentry.model.dequantize import DequantizeError
    from finsentry.model.evaluate import evaluate, plot_confusions, write_card
    from finsentry.model.export import ExportParityError
    from finsentry.model.requantize import requantize_static

    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out} is a file; give a folder to write the artifact into")
    try:
        result = requantize_static(source, out, version)
    except (FileNotFoundError, DequantizeError) as exc:
        raise _fail(str(exc)) from exc
    except OSError as exc:
        raise _fail(f"--out {out}: {exc.strerror or exc}") from exc
    except ExportParityError as exc:
        raise _fail(str(exc), 1) from exc
    card_path = source / "card.json"
    extra = json.loads(card_path.read_text()) if card_path.exists() else {}
    keep = {k: extra[k] for k in ("training_config", "training_dev", "chosen", "tuning") if k in extra}
    keep["requantized_from"] = {"model_version": extra.get("model_version"), **result}
    keep["rebuild"] = f"finsentry model requantize --source {source} --out {out} --version {version}"
    report = evaluate(out)
    plot_confusions(report, out / "eval")
    write_card(out, report, keep)
    typer.echo(json.dumps({**result, "headline": report["headline"]}, indent=2))


@model_app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    model: Annotated[Path | None, typer.Option(help="artifact folder (default: settings model.path)")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="also evaluate this PyTorch checkpoint (FP32)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the full report as JSON")] = False,
    write_card: Annotated[bool, typer.Option(help="(re)write card.json / card.md in the artifact folder")] = False,
    plots: Annotated[Path | None, typer.Option(help="write confusion-matrix PNGs into this folder")] = None,
    limit: Annotated[int | None, typer.Option(help="evaluate only the first N rows of each set (smoke)")] = None,
) -> None:
    """Accuracy and macro-F1 with 95% bootstrap CIs on FPB test (+ all-agree), topic and sentiment validation."""
    from finsentry.model.evaluate import evaluate, plot_confusions
    from finsentry.model.evaluate import write_card as write_card_fn
    from finsentry.model.scorer import ModelLoadError

    folder = model or settings_from(ctx).model.path
    try:
        report = evaluate(folder, checkpoint=checkpoint, limit=limit)
    except (ModelLoadError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from exc
    if plots is not None:
        plot_confusions(report, plots)
    if write_card:
        card_path = folder / "card.json"
        extra = json.loads(card_path.read_text()) if card_path.exists() else {}
        keep = {k: extra[k] for k in ("chosen", "rebuild", "training_config", "training_dev", "tuning") if k in extra}
        write_card_fn(folder, report, keep)
    if as_json:
        typer.echo(json.dumps(report, indent=1))
        return
    typer.echo(f"model {report['model_version']}")
    for name, entry in report["sets"].items():
        for variant, s in entry["variants"].items():
            lo, hi = s["accuracy_ci95"]
            typer.echo(
                f"{name:24s} {variant:10s} n={entry['n']:5d} acc={s['accuracy']:.4f} [{lo:.3f},{hi:.3f}] "
                f"macroF1={s['macro_f1']:.4f}"
            )


def _check_storage(storage: str) -> None:
    """Exit 2 unless ``storage`` is a database URL SQLAlchemy knows, and (SQLite) its folder exists or can be made."""
    import os

    try:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    except ModuleNotFoundError as exc:
        raise _fail("model tune needs the train extra (optuna, SQLAlchemy): pip install -e '.[train]'") from exc
    hint = "give a database URL such as sqlite:///runs/tune.db"
    try:
        url = make_url(storage)
        url.get_dialect()
    except NoSuchModuleError as exc:  # a subclass of ArgumentError
        raise _fail(f"--storage {storage!r}: unknown database kind {url.drivername!r}; {hint}") from exc
    except ArgumentError as exc:
        raise _fail(f"--storage {storage!r} is not a database URL; {hint}") from exc
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    db = Path(url.database)
    if db.is_dir():
        raise _fail(f"--storage {storage}: {db} is a directory; name a database file inside it")
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(f"--storage {storage}: cannot create the folder {db.parent} ({exc.strerror or exc})") from exc
    if not os.access(db.parent, os.W_OK | os.X_OK) or (db.exists() and not os.access(db, os.R_OK | os.W_OK)):
        raise _fail(f"--storage {storage}: {db if db.exists() else db.parent} is not writable")


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest existing ancestor (the folder ``mkdir(parents=True)`` would create under)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(path: Path, option: str, folder: bool) -> None:
    """Exit 2 unless ``path`` can be written later: a file (``folder=False``; its folder must exist) or a folder
    of files (``folder=True``; created with its parents when missing)."""
    import os

    if folder:
        if path.exists() and not path.is_dir():
            raise _fail(f"{option} {path} exists and is not a folder; name a folder for the recipes")
        anchor = _nearest_existing(path)
        if not anchor.is_dir():
            raise _fail(f"{option} {path}: {anchor} is not a folder")
    else:
        if path.is_dir():
            raise _fail(f"{option} {path} is a directory; name a file such as {path / 'tuning.md'}")
        if not path.parent.is_dir():
            raise _fail(f"{option} {path}: the folder {path.parent} does not exist")
        anchor = path if path.exists() else path.parent
    if not os.access(anchor, os.W_OK):
        raise _fail(f"{option} {path}: {anchor} is not writable")


def _one_line(exc: Exception) -> str:
    """A pydantic ``ValidationError`` (or any error) as ``key: message; key: message``."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in errors())
    return " ".join(str(exc).split())


@model_app.command("tune")
def tune_cmd(
    trials: Annotated[int, typer.Option(min=1, help="trials to run now (the study resumes across calls)")] = 10,
    subset: Annotated[int, typer.Option(min=8, help="training examples per source in each one-epoch trial")] = 2000,
    storage: Annotated[str, typer.Option(help="optuna storage URL")] = "sqlite:///runs/tune.db",
    study: Annotated[str, typer.Option(help="study name")] = "finsentry",
    report: Annotated[Path | None, typer.Option(help="write the trials table (Markdown) here")] = None,
    eval_every: Annotated[int, typer.Option(min=1, help="steps between dev evaluations reported to the pruner")] = 40,
    dev_subset: Annotated[int | None, typer.Option(min=8, help="first N rows of each dev set (default: all)")] = None,
    best_out: Annotated[
        Path | None, typer.Option(help="write the best trials as full recipes DIR/trial-N.yaml (for model train)")
    ] = None,
    top: Annotated[int, typer.Option(min=1, help="how many recipes --best-out writes")] = 3,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="torch threads per trial (run several tune processes on one study to parallelize)"),
    ] = None,
) -> None:
    """Optuna search (TPE, median pruner) over the recipe, objective on dev only; stored in SQLite, resumable.

    A new study's first trial is the shipped recipe (model/configs/shipped.yaml), the one to beat. The storage
    URL, --report and --best-out are checked before the study starts (exit 2 on a bad one).
    """
    from finsentry.model.tuning import best_configs, run_study, study_markdown, trial_base

    try:
        trial_base(None, subset=subset, eval_every=eval_every, dev_subset=dev_subset, threads=threads)
    except ValueError as exc:
        raise _fail(f"invalid trial settings: {_one_line(exc)}") from exc
    _check_storage(storage)
    if report is not None:
        _check_writable(report, "--report", folder=False)
    if best_out is not None:
        _check_writable(best_out, "--best-out", folder=True)
    result = run_study(storage, study, trials, subset, eval_every=eval_every, dev_subset=dev_subset, threads=threads)
    table = study_markdown(result)
    if report:
        report.write_text(table)
    typer.echo(table)
    if best_out is not None:
        for path in best_configs(result, best_out, top=top):
            typer.echo(f"wrote {path}")


REJECTED_SHOWN = 20
"""Rejected input lines listed one by one by ``finsentry score --input`` (the rest are counted)."""


def _read_inputs(path: Path, text_column: str) -> tuple[list[dict], list[tuple[int, str]]]:
    """Rows of a ``.jsonl`` (one JSON object per line) or ``.csv`` (header row) file, and the rejected lines.

    Suffixes are matched case-insensitively; a UTF-8 byte-order mark is dropped (:mod:`finsentry.common.textfiles`).
    Returns ``(rows, rejected)``; ``rejected`` holds ``(line number, reason)`` of JSONL lines that are not
    JSON, not a JSON object, nested too deeply, hold a number of more than 4300 digits or a lone surrogate
    (blank lines are skipped). Raises :class:`typer.Exit` (2, with a message naming the file and line) if the
    file is missing or a directory, has another suffix, is not readable CSV, or no row has ``text_column``
    (a CSV header without it, or JSONL objects of which none has that field).
    """
    from finsentry.common.textfiles import BadLine, csv_header, describe_path_problem, iter_csv_rows, iter_json_lines

    problem = describe_path_problem(path)
    if problem is not None:
        raise _fail(problem)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows: list[dict] = []
        rejected: list[tuple[int, str]] = []
        for n, value in iter_json_lines(path, errors="replace"):
            if isinstance(value, BadLine):
                rejected.append((n, value.reason))
            elif not isinstance(value, dict):
                rejected.append((n, f"expected a JSON object, got {kind_of(value, 'a string')}"))
            else:
                rows.append(value)
        if rows and not any(text_column in row for row in rows):
            fields = sorted({str(k) for row in rows for k in row})
            shown = ", ".join(fields[:20]) + (f" (+{len(fields) - 20} more)" if len(fields) > 20 else "")
            raise _fail(
                f"{path}: no line has a field {text_column!r} (fields: {shown or 'none'}); "
                "name the text field with --text-column"
            )
        return rows, rejected
    if suffix == ".csv":
        try:
            columns = csv_header(path, errors="replace")
            if columns and text_column not in columns:
                raise _fail(
                    f"{path}: no column {text_column!r} in the header (columns: {', '.join(columns)}); "
                    "name the text column with --text-column"
                )
            return [row for _, row in iter_csv_rows(path, errors="replace")], []
        except ValueError as exc:
            raise _fail(str(exc)) from exc
    raise _fail(f"{path}: expected a .csv or .jsonl file")


def _named(prediction: dict) -> dict:
    """A prediction dict with ``sentiment_probs`` as ``{"negative": p, "neutral": p, "positive": p}`` (not a list).

    >>> _named({"sentiment_probs": [0.7, 0.2, 0.1]})["sentiment_probs"]
    {'negative': 0.7, 'neutral': 0.2, 'positive': 0.1}
    """
    from finsentry.model.labels import SENTIMENT_LABELS

    probs = prediction.get("sentiment_probs")
    if isinstance(probs, list | tuple):
        prediction = prediction | {"sentiment_probs": dict(zip(SENTIMENT_LABELS, probs, strict=True))}
    return prediction


def score_cmd(
    ctx: typer.Context,
    text: Annotated[str | None, typer.Argument(help="one text to score")] = None,
    input: Annotated[Path | None, typer.Option("--input", help="CSV or JSONL file of texts")] = None,
    text_column: Annotated[str, typer.Option(help="column / field holding the text")] = "text",
    output: Annotated[Path | None, typer.Option(help="JSONL output (default: stdout)")] = None,
) -> None:
    """Score one text or a file of texts with the model (no Kafka); prints / writes JSON lines.

    Each line also says the language: ``detected_lang`` and ``detected_lang_confidence`` (py3langid), and a
    ``warning`` when the live scorer would not score the text: a row's ``lang`` field outside
    ``ingest.scorer.allowed_langs`` (the scorer dead-letters it), or, without one, a text read with confidence
    0.5 or more as a language outside them (the scorer goes by the declared ``lang`` and never guesses). The
    warnings are also counted, or for one TEXT printed, on standard error.

    With ``--input``: exit 0 if every line was read, 1 if some JSONL lines were rejected (not JSON, not a
    JSON object, nested too deeply, a number of more than 4300 digits or a lone surrogate; listed with their
    line numbers; every other row is scored) or writing ``--output`` failed part way (the message says how many
    rows were written), 2 on a bad file, a text column / field no row has, or an unwritable ``--output``.
    Rows without a non-empty text are skipped and counted.
    """
    from tqdm import tqdm

    from finsentry.ingest.language import language_check
    from finsentry.model.scorer import ModelLoadError, Scorer

    if (text is None) == (input is None):
        raise _fail("give either TEXT or --input FILE")
    if text is not None and not text.strip():
        raise _fail("TEXT is empty")
    settings = settings_from(ctx)
    rows, rejected = _read_inputs(input, text_column) if input is not None else ([], [])
    try:
        scorer = Scorer.from_settings(settings.model)
    except ModelLoadError as exc:
        raise _fail(str(exc)) from exc
    allowed = settings.ingest.scorer.allowed_langs
    if text is not None:
        lang = language_check(text, allowed)
        typer.echo(json.dumps({"text": text} | _named(scorer.predict([text])[0].to_dict()) | lang))
        if "warning" in lang:
            typer.echo(f"warning: {lang['warning']}", err=True)
        return
    try:
        out = output.open("w", encoding="utf-8") if output else sys.stdout
    except OSError as exc:
        raise _fail(f"cannot write --output {output}: {exc.strerror or exc}; nothing was scored") from exc
    scored = skipped = written = flagged = 0
    try:
        for start in tqdm(range(0, len(rows), 256), desc="scoring", unit="batch", disable=output is None):
            batch = rows[start : start + 256]
            good = [r for r in batch if isinstance(r.get(text_column), str) and r[text_column].strip()]
            skipped += len(batch) - len(good)
            for row, pred in zip(good, scorer.predict([r[text_column] for r in good]), strict=True):
                lang = language_check(row[text_column], allowed, row.get("lang"))
                flagged += "warning" in lang
                out.write(json.dumps(row | _named(pred.to_dict()) | lang, ensure_ascii=False) + "\n")
                scored += 1
            out.flush()  # so that a full disk is noticed here, with an exact count of the rows written
            written = scored
        if output:
            out.close()
    except OSError as exc:
        if output:
            with contextlib.suppress(OSError):
                out.close()
        where = f"--output {output}" if output else "standard output"
        raise _fail(
            f"cannot write {where}: {exc.strerror or exc}; {written} scored rows were written before the error "
            f"(of {len(rows)} rows read)",
            1,
        ) from exc
    finally:
        if output and not out.closed:
            with contextlib.suppress(OSError):
                out.close()
    typer.echo(f"scored {scored}, skipped {skipped} rows without a non-empty '{text_column}'", err=True)
    if flagged:
        typer.echo(
            f"warning: {flagged} of {scored} scored rows are in a language outside ingest.scorer.allowed_langs "
            f"({', '.join(allowed)}): the live scorer would dead-letter them (see each row's warning field)",
            err=True,
        )
    if rejected:
        for line, reason in rejected[:REJECTED_SHOWN]:
            typer.echo(f"  {input}:{line}: {reason}", err=True)
        more = len(rejected) - REJECTED_SHOWN
        typer.echo(
            f"rejected {len(rejected)} lines of {input}{f' ({more} more not shown)' if more > 0 else ''}; "
            f"each line must be one JSON object (valid text, at most {MAX_JSON_DEPTH} levels deep)",
            err=True,
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``model ...`` and ``score`` to the top-level app."""
    app.add_typer(model_app, name="model")
    app.command("score")(score_cmd)


@model_app.command("build")
def build_cmd(
    config: Annotated[Path, typer.Option("--config", help="training recipe YAML")] = DEFAULT_CONFIG,
    run_dir: Annotated[Path, typer.Option(help="training run folder (reused if it holds best.pt)")] = Path(
        "runs/shipped"
    ),
    out: Annotated[Path, typer.Option(help="artifact folder")] = REPO_ROOT / "model" / "artifacts" / "current",
    version: Annotated[str, typer.Option(help="model_version")] = "minilm-mt-v1",
    retrain: Annotated[bool, typer.Option(help="train even if RUN_DIR/best.pt exists")] = False,
) -> None:
    """Rebuild the shipped artifact end to end: train (unless done), export, evaluate, write the card."""
    import yaml

    from finsentry.model.datasets import load_examples
    from finsentry.model.evaluate import evaluate, plot_confusions, write_card
    from finsentry.model.export import export_checkpoint
    from finsentry.model.train import train

    cfg = _train_config(config)
    best_path = run_dir / "best.pt"
    if retrain or not best_path.is_file():
        train(cfg, run_dir)
    best = json.loads((run_dir / "best.json").read_text()) if (run_dir / "best.json").exists() else {}
    export_checkpoint(
        best_path,
        out,
        version,
        parity_texts=[e.text for e in load_examples("fpb_test")],
        calibration_texts=[e.text for e in load_examples("fpb_dev", 128) + load_examples("topic_dev", 128)],
    )
    report = evaluate(out, checkpoint=best_path)
    plot_confusions(report, out / "eval")
    rebuild = f"finsentry model build --config {config} --run-dir {run_dir} --out {out} --version {version} --retrain"
    write_card(
        out,
        report,
        {
            "training_config": yaml.safe_load((run_dir / "config.yaml").read_text()),
            "training_dev": best,
            "rebuild": rebuild,
        },
    )
    typer.echo(json.dumps(report["headline"], indent=2))
