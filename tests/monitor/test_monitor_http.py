"""The monitor HTTP service on 127.0.0.1: every route, error codes, Prometheus names and the ticker cap."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from http_testkit import raw
from prometheus_client import generate_latest

from finsentry.ingest.contract import KeyedItem
from finsentry.monitor.aggregator import Aggregator
from finsentry.monitor.http_api import MonitorHTTPServer
from finsentry.monitor.metrics import METRICS, AggregatorMetrics
from finsentry.monitor.queries import MonitorState
from finsentry.monitor.settings import MonitorSettings

T0 = datetime(2015, 8, 24, 13, 0, tzinfo=UTC)


def _item(i: int, key: str, minute: float, neg: bool) -> KeyedItem:
    return KeyedItem(
        id=f"n{i}",
        key=key,
        published_at=T0 + timedelta(minutes=minute),
        sentiment="negative" if neg else "neutral",
        sentiment_score=-0.9 if neg else 0.1,
        text=f"headline {i}",
        url=f"https://example.test/{i}",
        model_version="v-test",
    )


@pytest.fixture(scope="module")
def server():
    # a 40-minute stream: one 5-minute detector window (the legacy single scale; the default hour / day
    # scales need hours / days of history before they may alarm)
    s = MonitorSettings(http_port=0, ticker_metrics_cap=1, spike={"window_seconds": 300})
    agg = Aggregator(s)
    i = 0
    for minute in range(40):  # `all`: 5 items a minute, one negative; a burst of negatives at minutes 30..33
        for j in range(5):
            i += 1
            agg.process(_item(i, "all", minute + j / 5, neg=(j == 0) or 30 <= minute < 34))
        i += 1
        agg.process(_item(i, "ticker:AAPL", minute + 0.5, neg=False))
        if minute % 10 == 0:
            i += 1
            agg.process(_item(i, "ticker:XOM", minute + 0.7, neg=True))
    state = MonitorState(agg)
    metrics = AggregatorMetrics(state.snapshot, lambda: agg.watermark.value, lambda: len(agg.keys), 1, s.window_names)
    srv = MonitorHTTPServer("127.0.0.1", 0, state, metrics.registry).start()
    yield srv, agg
    srv.stop()


def get(srv, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_health_and_trends(server):
    srv, agg = server
    code, body = get(srv, "/api/health")
    h = json.loads(body)
    assert code == 200 and h["keys"] == 3 and h["model_versions"] == ["v-test"]
    assert h["watermark"] == "2015-08-24T13:37:48Z"  # latest event 13:39:48 (minute 39 + 4/5) minus 120 s grace
    code, body = get(srv, "/api/trends")
    t = json.loads(body)
    assert t["windows"] == ["5m", "1h", "1d"] and set(t["keys"]) == {"all", "ticker:AAPL", "ticker:XOM"}
    assert t["keys"]["all"]["1h"]["items"] == 200 and t["keys"]["all"]["5m"]["items"] == 25
    assert t["keys"]["ticker:XOM"]["1d"] == {
        "items": 4,
        "negative": 4,
        "neutral": 0,
        "positive": 0,
        "negative_ratio": 1.0,
        "mean_score": -0.9,
    }
    code, body = get(srv, "/api/trends?window=5m")
    assert code == 200 and json.loads(body)["windows"] == ["5m"]
    code, body = get(srv, "/api/trends?window=2h")
    assert code == 400 and "unknown window '2h'" in json.loads(body)["error"]


def test_spikes_and_buckets(server):
    srv, agg = server
    code, body = get(srv, "/api/spikes")
    spikes = json.loads(body)["spikes"]
    assert code == 200 and spikes and spikes[0]["key"] == "all"
    assert [e["event"] for e in reversed(spikes)][0] == "started"
    ends = [e["bucket_end"] for e in spikes]
    assert ends == sorted(ends, reverse=True)  # newest first
    first = spikes[-1]
    assert set(first) >= {
        "event",
        "key",
        "bucket_start",
        "bucket_end",
        "window_seconds",
        "share",
        "baseline_mean",
        "baseline_std",
        "z",
        "volume",
        "volume_baseline",
        "volume_z",
        "items",
        "negative",
        "evidence",
    }
    assert len(first["evidence"]) == 5 and first["evidence"][0]["sentiment_score"] == -0.9
    assert json.loads(get(srv, "/api/spikes?limit=1")[1])["spikes"] == spikes[:1]
    assert json.loads(get(srv, "/api/spikes?key=ticker:AAPL")[1])["spikes"] == []
    assert get(srv, "/api/spikes?state=open")[0] == 400
    assert get(srv, "/api/spikes?limit=x")[0] == 400
    code, body = get(srv, "/api/keys/ticker%3AAAPL/buckets?limit=2")
    b = json.loads(body)
    assert code == 200 and b["bucket_seconds"] == 60
    assert b["buckets"] == [
        {"start": "2015-08-24T13:38:00Z", "items": 1, "negative": 0, "neutral": 1, "positive": 0, "score_sum": 0.1},
        {"start": "2015-08-24T13:39:00Z", "items": 1, "negative": 0, "neutral": 1, "positive": 0, "score_sum": 0.1},
    ]
    assert get(srv, "/api/keys/ticker:NOPE/buckets")[0] == 404
    code, body = get(srv, "/api/detectors?key=all")
    d = json.loads(body)["keys"]["all"]
    assert code == 200 and d["scales"][0]["share"]["mean"] is not None and "active" in d
    assert get(srv, "/nope")[0] == 404


def test_metrics_names_and_ticker_cap(server):
    srv, agg = server
    code, text = get(srv, "/metrics")
    assert code == 200
    assert 'finsentry_window_items{key="all",window="1h"} 200.0' in text
    assert 'finsentry_window_items{key="ticker:AAPL",window="1d"} 40.0' in text
    assert 'key="ticker:XOM"' not in text  # cap 1: only the busiest ticker is exported
    active = json.loads(get(srv, "/api/spikes?state=active")[1])["spikes"]
    assert [e["key"] for e in active] == ["all"]  # the burst is still in the short window at the end
    assert 'finsentry_spike_active{key="all"} 1.0' in text and 'finsentry_spike_active{key="ticker:AAPL"} 0.0' in text
    wm = next(line for line in text.splitlines() if line.startswith("finsentry_event_time_watermark_seconds "))
    assert float(wm.split()[1]) == datetime(2015, 8, 24, 13, 37, 48, tzinfo=UTC).timestamp()
    for spec in METRICS:
        name, typ = spec.name, spec.type
        assert f"# TYPE {name} {typ}" in text or f"# TYPE {name.removesuffix('_total')} {typ}" in text, name


def test_index_page_lists_the_routes(server):
    srv, _ = server
    code, html = get(srv, "/")
    assert code == 200 and "/api/trends" in html and "/metrics" in html


@pytest.mark.parametrize(
    "path", ["/api/health", "/api/trends", "/api/keys/ticker:AAPL/buckets", "/metrics", "/", "/static/dashboard.css"]
)
def test_head_answers_a_get_route_with_its_headers_and_no_body(server, path):
    srv, _ = server
    status, headers, body = raw(srv.port, f"HEAD {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    get_status, get_headers, get_body = raw(srv.port, f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    assert status == get_status == "HTTP/1.0 200 OK"
    assert body == b"" and len(get_body) > 0
    assert headers["content-type"] == get_headers["content-type"]
    if path.startswith("/static/") or path == "/":
        from finsentry.monitor.http_api import STATIC_DIR

        file = STATIC_DIR / ("index.html" if path == "/" else path.removeprefix("/static/"))
        assert int(headers["content-length"]) == file.stat().st_size == len(get_body)
    else:
        assert int(headers["content-length"]) > 0


def test_head_of_an_unknown_route_is_404_and_other_methods_stay_501(server):
    srv, _ = server
    status, headers, body = raw(srv.port, b"HEAD /nope HTTP/1.0\r\n\r\n")
    assert status == "HTTP/1.0 404 Not Found" and body == b""
    assert headers["content-type"] == "application/json" and int(headers["content-length"]) > 0
    request = urllib.request.Request(f"http://127.0.0.1:{srv.port}/api/health", method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "application/json" and r.read() == b""
    assert raw(srv.port, b"POST /api/health HTTP/1.0\r\nContent-Length: 0\r\n\r\n")[0].startswith("HTTP/1.0 501")


def test_an_idle_connection_is_closed_by_the_server(server):
    from finsentry.monitor.http_api import IDLE_TIMEOUT_S

    srv, _ = server
    assert srv.idle_timeout_s == IDLE_TIMEOUT_S == 30.0  # the default every monitor gets
    quick = MonitorHTTPServer("127.0.0.1", 0, srv.state, srv.registry, idle_timeout_s=0.3).start()
    try:
        for sent in (b"", b"GET /api/health HTTP/1.1\r\nHost: x\r\n"):  # nothing at all; a request never finished
            with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as sock:
                sock.sendall(sent)
                assert sock.recv(1024) == b""  # closed by the server (a client timeout would raise instead)
        status, _, body = raw(quick.port, b"GET /api/health HTTP/1.0\r\n\r\n")  # still serving
        assert status == "HTTP/1.0 200 OK" and json.loads(body)["keys"] == 3
    finally:
        quick.stop()


def test_spike_window_items_counts_the_window_behind_the_current_z():
    """On a slow key the day scale speaks and the hour window holds a story or two: the gauge the alerts quote as
    "over N stories in the window behind that z" counts the day's stories (it counted the hour's: "over 0 items"
    next to "z=2.6 negative 6/17" in the SVB demo's alert)."""
    s = MonitorSettings(http_port=0)  # default scales: an hour and a day
    agg = Aggregator(s)
    i = 0
    for hour in range(24 * 5):  # five days, two stories an hour, one in four negative
        for j in range(2):
            i += 1
            agg.process(_item(i, "all", hour * 60 + j * 30, neg=(i % 4 == 0)))
    state = MonitorState(agg)
    last = agg.key_state("all").detector.last
    assert last is not None and last.window_seconds == 86_400, last
    hour_window = agg.key_state("all").win_items[0]
    detectors = state.snapshot().detectors["all"]
    assert detectors["window_items"] == last.items and last.items > 40 > hour_window, (detectors, last, hour_window)
    metrics = AggregatorMetrics(state.snapshot, lambda: agg.watermark.value, lambda: len(agg.keys), 1, s.window_names)
    text = generate_latest(metrics.registry).decode()
    assert f'finsentry_spike_window_items{{key="all"}} {float(last.items)}' in text, text
