"""The one-line 'needs the X extra' message is only for an extra that is not installed: a missing submodule of an
installed one (a version mismatch, a broken install) is a bug and keeps its traceback."""

from __future__ import annotations

import pytest

from finsentry.cli import missing_extra_message


def test_a_missing_submodule_of_an_installed_extra_is_not_called_a_missing_extra():
    pytest.importorskip("onnxruntime")  # installed: the `cpu` extra is there
    exc = ModuleNotFoundError("No module named 'onnxruntime.no_such_part'", name="onnxruntime.no_such_part")
    assert missing_extra_message(exc) is None


def test_an_extra_that_is_not_installed_is_named(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # as `import onnxruntime` then fails
    message = missing_extra_message(ModuleNotFoundError("import of onnxruntime halted", name="onnxruntime"))
    assert message is not None and message.startswith("error: this command needs the `cpu` extra"), message
