"""The shared room: what every stage uses and no stage owns.

Filesystem locations (:mod:`~finsentry.common.paths`), local server and process helpers
(:mod:`~finsentry.common.net`), the limits every HTTP server shares (:mod:`~finsentry.common.httpd`) and the
route tables and answers above them (:mod:`~finsentry.common.http_routes`), careful
readers of users' files (:mod:`~finsentry.common.textfiles`), Prometheus metric declarations
(:mod:`~finsentry.common.metric_spec`), numbers read back from a registry
(:mod:`~finsentry.common.registry_stats`) and the layering of nested settings (:mod:`~finsentry.common.mappings`).
The folder ``common/`` is installed as ``finsentry.common``.

It sits at the bottom of the layers (``[tool.importlinter]`` in ``pyproject.toml``): it imports no stage
(``finsentry.ingest``, ``finsentry.model``, ``finsentry.monitor``, ``finsentry.alerts``) and not the glue
(``finsentry`` itself); anything here may be imported from anywhere.
"""
