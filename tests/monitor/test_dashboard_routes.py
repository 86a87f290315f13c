"""The dashboard's files and the supervisor's JSON route on the monitor HTTP service (127.0.0.1, free port)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from finsentry.monitor.aggregator import Aggregator
from finsentry.monitor.http_api import STATIC_DIR, MonitorHTTPServer
from finsentry.monitor.metrics import AggregatorMetrics
from finsentry.monitor.queries import MonitorState
from finsentry.monitor.settings import MonitorSettings


@pytest.fixture(scope="module")
def server() -> Iterator[MonitorHTTPServer]:
    s = MonitorSettings(http_port=0)
    agg = Aggregator(s)
    state = MonitorState(agg)
    metrics = AggregatorMetrics(state.snapshot, lambda: agg.watermark.value, lambda: len(agg.keys), 50, s.window_names)
    srv = MonitorHTTPServer("127.0.0.1", 0, state, metrics.registry).start()
    yield srv
    srv.stop()


def _get(srv: MonitorHTTPServer, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}{path}", timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


def test_the_page_and_every_file_it_references_are_served_from_the_package(server) -> None:
    code, kind, body = _get(server, "/")
    assert code == 200 and kind.startswith("text/html")
    page = body.decode()
    refs = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert sorted(refs) == ["/static/dashboard.css", "/static/dashboard.js"]
    assert not re.search(r'(?:src|href)="https?://', page), "no CDN: the page must work without network"
    for ref, want in (("/static/dashboard.css", "text/css"), ("/static/dashboard.js", "text/javascript")):
        code, kind, body = _get(server, ref)
        assert code == 200 and kind.startswith(want)
        assert body == (STATIC_DIR / ref.rsplit("/", 1)[1]).read_bytes()
    js = (STATIC_DIR / "dashboard.js").read_text()
    for route in ("/api/health", "/api/trends", "/api/spikes", "/api/detectors", "/api/pipeline", "/buckets"):
        assert route in js
    assert "http://" not in js.replace("http://www.w3.org/2000/svg", "")


@pytest.mark.parametrize(
    "path", ["/static/../http_api.py", "/static/%2e%2e/settings.py", "/static/nope.js", "/static/x.py"]
)
def test_only_the_dashboards_own_files_are_served(server, path: str) -> None:
    code, kind, body = _get(server, path)
    assert code == 404 and kind == "application/json"
    assert "error" in json.loads(body)


def test_json_routes_added_by_a_supervisor_are_served(server) -> None:
    code, _kind, _body = _get(server, "/api/pipeline")
    assert code == 404  # a bare aggregator has none; the page then shows the monitor's own numbers
    server.json_routes["/api/pipeline"] = lambda: {"scorer": {"scored": 7}}
    try:
        code, kind, body = _get(server, "/api/pipeline")
        assert code == 200 and kind == "application/json"
        assert json.loads(body) == {"scorer": {"scored": 7}}
        code, _kind, body = _get(server, "/api/nope")
        assert code == 404 and json.loads(body)["error"].endswith(", /api/pipeline")  # the 404 lists it too
    finally:
        server.json_routes.clear()
