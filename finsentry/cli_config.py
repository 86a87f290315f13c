"""``finsentry config show|docs``: the effective settings and the generated reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from finsentry.cli import settings_from

config_app = typer.Typer(help="Show the effective settings or write the configuration reference.", no_args_is_help=True)


@config_app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON (env + YAML + defaults; secrets masked)."""
    typer.echo(json.dumps(settings_from(ctx).model_dump(mode="json"), indent=2))


@config_app.command("docs")
def docs(out: Annotated[Path, typer.Option(help="Markdown file to write")] = Path("docs/config.md")) -> None:
    """Write the configuration reference (every key, env name, default, unit) generated from the settings models."""
    from finsentry.config_docs import config_markdown

    out.write_text(config_markdown())
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``config ...`` to the top-level app."""
    app.add_typer(config_app, name="config")
