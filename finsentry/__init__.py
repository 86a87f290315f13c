"""finsentry: streaming financial-news sentiment monitor.

Stages (data flows one way): ``finsentry.ingest`` -> ``finsentry.model`` -> ``finsentry.monitor`` ->
``finsentry.alerts``. This ``finsentry/`` folder holds only glue: settings, the CLI and process supervision.
"""

__version__ = "0.1.0"
