"""Every docstring example of every module of finsentry runs: one test per module, found by walking the packages.

The six packages (``pyproject.toml``, ``[tool.setuptools]``): ``finsentry`` (the glue, ``finsentry/``) and the rooms
installed as its subpackages from their own folders (``common/`` -> ``finsentry.common``, ...). Each module is
imported and its examples run with ``doctest``; a module without examples is still imported, so a module that
cannot be imported (an extra missing, a broken import) fails here by name instead of being skipped.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

PACKAGES = (
    "finsentry",
    "finsentry.common",
    "finsentry.ingest",
    "finsentry.model",
    "finsentry.monitor",
    "finsentry.alerts",
)


def _raise(name: str) -> None:
    raise ImportError(f"cannot import package {name}")  # walk_packages would otherwise skip it silently


def package_modules() -> list[str]:
    """The names of the packages and of every module and subpackage below them, in walking order."""
    names: list[str] = []
    for package in PACKAGES:
        path = importlib.import_module(package).__path__
        names += [package] + [m.name for m in pkgutil.walk_packages(path, package + ".", onerror=_raise)]
    return names


MODULES = package_modules()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner()
    report: list[str] = []
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_every_python_file_of_the_packages_is_walked() -> None:
    """The walk sees every ``.py`` file in the package folders (none left out by a missing ``__init__.py``)."""
    files: set[str] = set()
    for package in PACKAGES:
        folder = Path(importlib.import_module(package).__file__).parent
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            files.add(".".join((package, *parts)).removesuffix(".__init__"))
    assert files - set(MODULES) == set()
    assert len(MODULES) == len(set(MODULES))
