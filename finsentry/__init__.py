"""finsentry: streaming financial-news sentiment monitor.

Stages (data flows one way): ``finsentry.ingest`` -> ``finsentry.model`` -> ``finsentry.monitor`` ->
``finsentry.alerts``. This ``finsentry/`` folder holds only glue: settings, the CLI and process supervision.

Folders and import names: the rooms at the repository's top level are installed as subpackages of this one
(``pyproject.toml``, ``[tool.setuptools.package-dir]``): ``ingest/`` -> ``finsentry.ingest``, ``model/`` ->
``finsentry.model``, ``monitor/`` -> ``finsentry.monitor``, ``alerts/`` -> ``finsentry.alerts``, ``common/`` ->
``finsentry.common``; ``finsentry/`` itself -> ``finsentry``. ``finsentry.monitor.aggregator`` is the file
``monitor/aggregator.py``.

Import layers (``[tool.importlinter]``, checked by ``scripts/lint_imports.py``): this glue -> ``alerts`` ->
``monitor`` -> ``ingest`` -> ``model`` -> ``common``; a module imports only its own room and those below.
See ``docs/architecture.md``.
"""

__version__ = "0.1.0"
