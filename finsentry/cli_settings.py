"""Settings for a CLI verb, in a module of its own: the verb modules (``cli_model``, ``cli_config``, ...) import it
without importing ``finsentry.cli``, which imports them all (a verb module imported first broke that loop)."""

from __future__ import annotations

import typer

from finsentry.settings import Settings, SettingsError, load_settings


def settings_from(ctx: typer.Context, **overrides) -> Settings:
    """Settings for a verb: the global ``--config`` file plus env plus ``overrides``; exits 2 on a bad value."""
    try:
        return load_settings((ctx.obj or {}).get("config"), **overrides)
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
