"""finsentry: streaming financial-news sentiment monitor.

Stages (data flows one way): ``finsentry.ingest`` -> ``finsentry.model`` -> ``finsentry.monitor`` ->
``finsentry.alerts``. This ``finsentry/`` folder holds only glue: settings, the CLI and process supervision.

Folders and import names: the rooms at the repository's top level are installed as subpackages of this one
(``pyproject.toml``, ``[tool.setuptools.package-dir]``): ``ingest/`` -> ``finsentry.ingest``, ``model/`` ->
``finsentry.model``, ``monitor/`` -> ``finsentry.monitor``, ``alerts/`` -> ``finsentry.alerts``; ``finsentry/``
itself -> ``finsentry``. ``finsentry.monitor.aggregator`` is the file ``monitor/aggregator.py``.
"""

__version__ = "0.1.0"
