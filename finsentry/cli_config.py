"""``finsentry config show|docs``: the effective settings and the generated reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer

from finsentry.cli_paths import nonempty_path
from finsentry.cli_settings import settings_from

config_app = typer.Typer(help="Show the effective settings or write the configuration reference.", no_args_is_help=True)


MASK = "*****"
"""What replaces a URL's password and query values in ``config show``."""


def mask_url(text: str) -> str:
    """``text`` with the password of its userinfo and every query value masked, if it is an absolute URL.

    Credentials inside a URL's path (e.g. a Slack webhook, which is a secret setting anyway) cannot be told
    apart from the path and are left alone.

    >>> mask_url("http://u:pw@h/x?token=abc&v=1")
    'http://u:*****@h/x?token=*****&v=*****'
    >>> mask_url("http://127.0.0.1:8600"), mask_url("broker:9092"), mask_url("plain text")
    ('http://127.0.0.1:8600', 'broker:9092', 'plain text')
    """
    try:
        parts = urlsplit(text)
        has_password = parts.password is not None
    except ValueError:
        return text
    if not parts.scheme or not parts.netloc:
        return text
    netloc = parts.netloc
    if has_password:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}:{MASK}@{host}"
    query = "&".join(
        f"{key}={MASK}" if sep else key for key, sep, _ in (pair.partition("=") for pair in parts.query.split("&"))
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query if parts.query else "", parts.fragment))


def mask_urls(value: Any) -> Any:
    """``value`` (JSON-ready settings) with :func:`mask_url` applied to every string in it."""
    if isinstance(value, dict):
        return {k: mask_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_urls(v) for v in value]
    return mask_url(value) if isinstance(value, str) else value


@config_app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the effective settings as JSON (env + YAML + defaults; secrets masked, and so are the passwords
    and query values of URLs)."""
    typer.echo(json.dumps(mask_urls(settings_from(ctx).model_dump(mode="json")), indent=2))


@config_app.command("docs")
def docs(
    out: Annotated[Path, typer.Option(parser=nonempty_path("--out"), help="Markdown file to write")] = Path(
        "docs/config.md"
    ),
) -> None:
    """Write the configuration reference (every key, env name, default, unit) generated from the settings models."""
    from finsentry.config_docs import config_markdown

    out.write_text(config_markdown())
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``config ...`` to the top-level app."""
    app.add_typer(config_app, name="config")
