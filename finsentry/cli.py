"""The ``finsentry`` command line: one verb per service, ``run`` composes them.

Each room's verbs are registered by a small module beside this one (``cli_model``, ``cli_score``, ``cli_ingest``,
``cli_monitor``, ``cli_alerts``, ``cli_run``); this file only builds the app and the global options.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from finsentry.cli_paths import nonempty_path


def _flag_type_hidden() -> None:
    """Typer 0.29's help shows every flag as ``<bool>``, as if it took a value; show no type for flags.

    ``--help``, ``--with-prometheus`` and the like take no value; click's own help shows none for them.
    """
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return None if self.is_flag or self.count else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich


_flag_type_hidden()

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""Values of ``--log-level``."""

app = typer.Typer(
    name="finsentry",
    help="Streaming financial-news sentiment monitor: Kafka ingest, ONNX scoring, spike detection, alerting.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstrings' ``code`` and paragraphs render as text, not raw markup
)


@app.callback()
def _global(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            parser=nonempty_path("--config"),
            help="YAML settings file (env FINSENTRY_CONFIG); env vars override it",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="log level: DEBUG, INFO, WARNING, ERROR, CRITICAL")] = "INFO",
) -> None:
    """Load settings once; every verb reads them from ``ctx.obj``."""
    if log_level.upper() not in LOG_LEVELS:
        typer.echo(f"error: --log-level {log_level!r} is not a log level; use one of {', '.join(LOG_LEVELS)}", err=True)
        raise typer.Exit(2)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = {"config": config}


def _register_all() -> None:
    import importlib

    for name in (
        "cli_model",
        "cli_score",
        "cli_registry",
        "cli_ingest",
        "cli_monitor",
        "cli_alerts",
        "cli_run",
        "cli_config",
    ):
        try:
            module = importlib.import_module(f"finsentry.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"finsentry.{name}":
                continue
            raise
        module.register(app)


_register_all()


EXTRA_OF_MODULE = {
    **dict.fromkeys(
        ("torch", "transformers", "optimum", "optuna", "sentence_transformers", "sklearn", "onnx"),
        "train",
    ),
    "onnxruntime": "cpu",
}
"""Top-level modules of the optional extras (pyproject ``[project.optional-dependencies]``) -> the extra."""

INSTALL_HINT = {
    "train": "pip install torch==2.13.0 && pip install -e '.[train]' (CPU torch first; or scripts/setup.sh dev)",
    "cpu": "pip install -e '.[cpu]' (or '.[gpu]' on a CUDA machine; or scripts/setup.sh)",
}


def _installed(module: str) -> bool:
    """Whether the top-level ``module`` can be found (False where ``sys.modules`` holds None for it)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """One line naming the extra that provides the module ``exc`` could not import, or None if no extra does, or
    if only a submodule of an installed extra is missing (``torch.foo`` with torch installed: a version mismatch
    or a broken install, a bug whose traceback is kept). Importing ``torch.nn`` without torch fails on ``torch``.

    >>> missing_extra_message(ModuleNotFoundError("No module named 'torch'", name="torch")).split(":")[0]
    'error'
    >>> "the `train` extra (module 'torch'" in missing_extra_message(ModuleNotFoundError(name="torch"))
    True
    >>> missing_extra_message(ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None
    True
    """
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is None or (exc.name != top and _installed(top)):
        return None
    return f"error: this command needs the `{extra}` extra (module '{top}' is not installed): {INSTALL_HINT[extra]}"


def main() -> None:
    """Console-script entry point. A missing optional dependency ends the command with one line naming its extra
    and how to install it (exit status 2), not a traceback."""
    try:
        app()
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc)
        if message is None:
            raise
        typer.echo(message, err=True)
        raise SystemExit(2) from exc
