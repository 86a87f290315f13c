"""CLI verbs of the model room: ``finsentry model train|export|requantize|eval|tune|build``.

Each verb checks its options and calls :mod:`finsentry.model` (the build steps are in
:mod:`finsentry.model.build`); ``finsentry score`` is in :mod:`finsentry.cli_score`, ``model list|promote|rollback|
retrain`` in :mod:`finsentry.cli_registry`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer

from finsentry.cli_paths import nonempty_path
from finsentry.cli_settings import settings_from
from finsentry.common.paths import REPO_ROOT
from finsentry.model.train_config import SHIPPED_RECIPE

model_app = typer.Typer(
    help="The model: train, export, eval, tune, build, retrain (need the train extra); list, promote, rollback.",
    no_args_is_help=True,
)


RecipeOption = Annotated[Path, typer.Option("--config", parser=nonempty_path("--config"), help="training recipe YAML")]
"""``--config`` of ``model train`` and ``model build``."""


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
    config: RecipeOption = SHIPPED_RECIPE,
    out: Annotated[
        Path, typer.Option(parser=nonempty_path("--out"), help="run folder: checkpoints, log, tokenizer")
    ] = Path("runs/train"),
) -> None:
    """Fine-tune the multi-task model; writes epoch<N>.pt, best.pt and train_log.jsonl into OUT."""
    from finsentry.model.train import train

    best = train(_train_config(config), out)
    typer.echo(json.dumps(best, indent=2))


@model_app.command("export")
def export_cmd(
    checkpoint: Annotated[
        Path, typer.Option(parser=nonempty_path("--checkpoint"), help="checkpoint written by `model train` (best.pt)")
    ],
    out: Annotated[Path, typer.Option(parser=nonempty_path("--out"), help="artifact folder to write")],
    version: Annotated[str, typer.Option(help="model_version recorded in labels.json and every scored message")],
    gpu_variants: Annotated[
        bool, typer.Option(help="also write model.fp16.onnx (CUDA) and model.qdq.onnx (TensorRT)")
    ] = True,
) -> None:
    """Export a checkpoint to ONNX: FP32, CPU dynamic INT8, GPU FP16 and static QDQ INT8 variants.

    Fails (exit 1) if INT8 disagrees with FP32 on more than 1% of FPB test sentences.
    """
    from finsentry.model.build import export_artifact
    from finsentry.model.export import ExportParityError

    if not checkpoint.is_file():
        raise _fail(f"checkpoint {checkpoint} not found; train one with `finsentry model train`")
    try:
        result = export_artifact(checkpoint, out, version, gpu_variants=gpu_variants)
    except ExportParityError as exc:
        raise _fail(str(exc), 1) from exc
    typer.echo(json.dumps(result, indent=2))


@model_app.command("requantize")
def requantize_cmd(
    source: Annotated[
        Path, typer.Option(parser=nonempty_path("--source"), help="artifact folder with a dynamic INT8 model.onnx")
    ],
    out: Annotated[Path, typer.Option(parser=nonempty_path("--out"), help="artifact folder to write")],
    version: Annotated[str, typer.Option(help="model_version recorded in labels.json and every scored message")],
    recipe: Annotated[
        str | None,
        typer.Option(
            help="try only this static INT8 recipe (e.g. static_split_outliers: every projection INT8, faster, "
            "~0.4 point less accurate on minilm-mt-v1; docs/tuning.md); default: the shipped order"
        ),
    ] = None,
) -> None:
    """Re-quantize an artifact's model with static INT8 (no training): same weights, batch-independent scores.

    Writes model.onnx (static INT8, the first recipe within 1% of FP32 on dev rows), labels.json,
    tokenizer.json, then evaluates and writes the card. Exit 1 if no recipe passes.
    """
    from finsentry.model.build import write_requantized_card
    from finsentry.model.dequantize import DequantizeError
    from finsentry.model.export import ExportParityError, static_recipe
    from finsentry.model.requantize import requantize_static

    if recipe is not None:
        try:
            static_recipe(recipe)
        except ValueError as exc:
            raise _fail(f"--recipe {exc}") from exc
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out} is a file; give a folder to write the artifact into")
    if out.resolve() == source.resolve():
        raise _fail(f"--out {out} is the --source folder: its dynamic INT8 model.onnx would be overwritten")
    try:
        result = requantize_static(source, out, version, recipe=recipe)
    except (FileNotFoundError, DequantizeError) as exc:
        raise _fail(str(exc)) from exc
    except OSError as exc:
        raise _fail(f"--out {out}: {exc.strerror or exc}") from exc
    except ExportParityError as exc:
        raise _fail(str(exc), 1) from exc
    args = ["--source", str(source), "--out", str(out), "--version", version]
    args += ["--recipe", recipe] if recipe is not None else []
    rebuild = shlex.join(["finsentry", "model", "requantize", *args])
    report = write_requantized_card(source, out, result, rebuild)
    typer.echo(json.dumps({**result, "headline": report["headline"]}, indent=2))


@model_app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    model: Annotated[
        Path | None,
        typer.Option(parser=nonempty_path("--model"), help="artifact folder (default: settings model.path)"),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(parser=nonempty_path("--checkpoint"), help="also evaluate this PyTorch checkpoint (FP32)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the full report as JSON")] = False,
    write_card: Annotated[bool, typer.Option(help="(re)write card.json / card.md in the artifact folder")] = False,
    plots: Annotated[
        Path | None, typer.Option(parser=nonempty_path("--plots"), help="write confusion-matrix PNGs into this folder")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="evaluate only the first N rows of each set (smoke)")] = None,
) -> None:
    """Accuracy and macro-F1 with 95% bootstrap CIs on FPB test (+ all-agree), topic and sentiment validation."""
    from finsentry.model.build import card_fields
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
        write_card_fn(folder, report, card_fields(folder))
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
    report: Annotated[
        Path | None, typer.Option(parser=nonempty_path("--report"), help="write the trials table (Markdown) here")
    ] = None,
    eval_every: Annotated[int, typer.Option(min=1, help="steps between dev evaluations reported to the pruner")] = 40,
    dev_subset: Annotated[int | None, typer.Option(min=8, help="first N rows of each dev set (default: all)")] = None,
    best_out: Annotated[
        Path | None,
        typer.Option(
            parser=nonempty_path("--best-out"),
            help="write the best trials as full recipes DIR/trial-N.yaml (for model train)",
        ),
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


def register(app: typer.Typer) -> None:
    """Add ``model ...`` to the top-level app."""
    app.add_typer(model_app, name="model")


@model_app.command("build")
def build_cmd(
    config: RecipeOption = SHIPPED_RECIPE,
    run_dir: Annotated[
        Path, typer.Option(parser=nonempty_path("--run-dir"), help="training run folder (reused if it holds best.pt)")
    ] = Path("runs/shipped"),
    out: Annotated[Path, typer.Option(parser=nonempty_path("--out"), help="artifact folder")] = REPO_ROOT
    / "model"
    / "artifacts"
    / "current",
    version: Annotated[str, typer.Option(help="model_version")] = "minilm-mt-v1",
    retrain: Annotated[bool, typer.Option(help="train even if RUN_DIR/best.pt exists")] = False,
) -> None:
    """Rebuild the shipped artifact end to end: train (unless done), export, evaluate, write the card."""
    from finsentry.model.build import build_shipped

    args = ["--config", str(config), "--run-dir", str(run_dir), "--out", str(out), "--version", version]
    rebuild = shlex.join(["finsentry", "model", "build", *args, "--retrain"])  # quoted: paths may hold spaces
    report = build_shipped(_train_config(config), run_dir, out, version, rebuild, retrain=retrain)
    typer.echo(json.dumps(report["headline"], indent=2))
