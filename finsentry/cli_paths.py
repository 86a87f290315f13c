"""Parser of file / folder options: a path, but never an empty string.

``Path("")`` is ``Path(".")``: ``finsentry run --workdir ""`` wrote its relay token and state into the current
folder, ``finsentry report --out ""`` its report there. An empty value now stops before anything runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer


def nonempty_path(option: str) -> Callable[[str], Path]:
    """A ``typer.Option(parser=...)`` giving a :class:`~pathlib.Path`; ``""`` is refused (``"."`` is not).

    >>> nonempty_path("--out")("reports")
    PosixPath('reports')

    Raises (from the parser):
        typer.Exit: code 2, after ``error: OPTION: an empty path ...`` (one line on stderr), for ``""``.
    """

    def parse(value: str) -> Path:
        if value == "":
            typer.echo(f"error: {option}: an empty path; name a file or folder ('.' for the current one)", err=True)
            raise typer.Exit(2)
        return Path(value)

    return parse
