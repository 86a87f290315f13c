"""Alert quality on real news streams: does the monitor alert on real sell-offs, at its defaults, and stay quiet?

Replays each stream of ``../shared/data/events/`` (ten real event windows; provenance, licences and the
accepted alert windows in that folder's README) through the same code the live pipeline runs:

1. every row becomes a ``news.raw`` item (time column: ``ts_utc`` / ``ts`` as UTC; date-only sources at noon
   US/Eastern, as the README says) and goes through :func:`finsentry.ingest.validation.normalize_item`
   (text normalization, cashtags and company names -> tickers with the default company table);
2. the shipped model scores it (:class:`finsentry.model.scorer.Scorer`, cached per model version under
   ``runs/events-cache/``, so a detector change reruns in seconds);
3. :func:`finsentry.monitor.report.backfill` fans it out to its aggregate keys and feeds the live
   :class:`~finsentry.monitor.aggregator.Aggregator` with the settings a user gets out of the box
   (``MonitorSettings()``, or ``--preset NAME``).

Per stream: items per day; **hit**: a spike that *starts* inside the accepted window on ``all`` or on a key
whose subject fits the event (the topic and ticker keys in :data:`STREAMS`); **first alert**: hours from the
window's first midnight (UTC) to the first fitting spike start; **false alarms per week**: spikes starting
outside the window on ``all`` and topic keys, per week of the stream's span (ticker keys apart; spikes on a
non-fitting topic inside the window are counted as neither).

These files are a development set (the monitor is also judged on other real streams): the benchmark reports
every stream, not only the total. The data is read from the shared folder by path and never copied here
(licences: see its README).

    python benchmarks/events.py [--events DIR] [--preset NAME] [--record LABEL] [--spikes-out FILE]

``--record LABEL`` writes the table into the "Alert quality on real event streams" section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from finsentry.common.paths import REPO_ROOT, SHIPPED_MODEL_DIR
from finsentry.monitor.report import backfill
from finsentry.monitor.settings import MonitorSettings, preset

EVENTS_DIR = REPO_ROOT.parent / "shared" / "data" / "events"
CACHE_DIR = REPO_ROOT / "runs" / "events-cache"
RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"
NOON_EASTERN = time(12, 0)

MARKET = (
    "markets",
    "stock_movement",
    "stock_commentary",
    "macro",
    "general_news_opinion",
    "fed_central_banks",
    "treasuries_corporate_debt",
    "energy_oil",
    "currencies",
    "gold_metals_materials",
    "politics",
)
"""Topics whose subject fits a market-wide sell-off (every topic but company-, deal- and people-specific ones)."""
BANKS = (
    "financials",
    "markets",
    "stock_movement",
    "stock_commentary",
    "macro",
    "general_news_opinion",
    "fed_central_banks",
    "legal_regulation",
    "treasuries_corporate_debt",
)
CRYPTO = (
    "currencies",
    "markets",
    "stock_movement",
    "stock_commentary",
    "general_news_opinion",
    "financials",
    "legal_regulation",
    "macro",
)
COMPANY = (
    "company_product_news",
    "stock_movement",
    "stock_commentary",
    "legal_regulation",
    "financials",
    "general_news_opinion",
)


@dataclass(frozen=True)
class Stream:
    """One event stream: file, accepted alert window(s) (UTC dates, inclusive) and the subjects that fit."""

    file: str
    windows: tuple[tuple[date, date], ...]
    topics: tuple[str, ...]
    tickers: tuple[str, ...] = ()
    event: str = ""

    @property
    def name(self) -> str:
        return self.file.split(".")[0]


def _d(s: str) -> date:
    return date.fromisoformat(s)


STREAMS: tuple[Stream, ...] = (
    Stream("svb2023_cnbc.csv", ((_d("2023-03-09"), _d("2023-03-15")),), BANKS, ("SIVB",), "SVB collapse"),
    Stream(
        "svb2023_en_business_feeds.csv.gz", ((_d("2023-03-09"), _d("2023-03-15")),), BANKS, ("SIVB",), "SVB collapse"
    ),
    Stream("crypto__terra_luna_2022-05.csv", ((_d("2022-05-09"), _d("2022-05-13")),), CRYPTO, (), "Terra/LUNA"),
    Stream("crypto__celsius_3ac_2022-06.csv", ((_d("2022-06-12"), _d("2022-06-15")),), CRYPTO, (), "Celsius / 3AC"),
    Stream("reuters__q4_2018_selloff.csv", ((_d("2018-12-17"), _d("2018-12-26")),), MARKET, (), "Q4 2018 sell-off"),
    Stream(
        "reuters__oct2018_selloff.csv",
        ((_d("2018-10-10"), _d("2018-10-12")), (_d("2018-10-24"), _d("2018-10-25"))),
        MARKET,
        (),
        "Oct 2018 sell-off",
    ),
    Stream(
        "reuters__boeing737max_2019-03-10.csv",
        ((_d("2019-03-10"), _d("2019-03-14")),),
        COMPANY,
        ("BA",),
        "Boeing 737 MAX",
    ),
    Stream("reuters__wirecard_2020-06-18.csv", ((_d("2020-06-18"), _d("2020-06-26")),), COMPANY, ("WDI",), "Wirecard"),
    Stream("guardian__volmageddon_2018-02-05.csv", ((_d("2018-02-05"), _d("2018-02-09")),), MARKET, (), "Volmageddon"),
    Stream("guardian__q4_2018_selloff.csv", ((_d("2018-12-17"), _d("2018-12-26")),), MARKET, (), "Q4 2018 sell-off"),
)
"""The ten development streams and their accepted windows, as given in the events README."""

_TOKENISED = [
    (re.compile(r"\b([A-Z]) \. ([A-Z]) \.(?= |$)"), r"\1.\2."),  # "U . S ." -> "U.S."
    (re.compile(r" ([.,:;!?%)])"), r"\1"),
    (re.compile(r"([($]) "), r"\1"),
    (re.compile(r" ' s\b"), "'s"),
    (re.compile(r"(\d) \. (\d)"), r"\1.\2"),
]


def detokenise(text: str) -> str:
    """Undo the word tokenisation of the Kaggle Reuters headlines (a known defect of that source).

    >>> detokenise("U . S . consumer spending , factory data point to USD 7 . 6 billion")
    'U.S. consumer spending, factory data point to USD 7.6 billion'
    """
    for pattern, repl in _TOKENISED:
        text = pattern.sub(repl, text)
    return text


def load_rows(path: Path) -> list[dict[str, Any]]:
    """``news.raw``-shaped dicts (id, text, published_at ISO UTC, source, url) of one events file, in file order."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
    text_col = "text" if "text" in df.columns else "title"
    eastern = ZoneInfo("America/New_York")
    rows = []
    for i, r in enumerate(df.to_dict("records")):
        if "ts_utc" in r and r["ts_utc"]:
            ts = pd.Timestamp(r["ts_utc"]).tz_convert("UTC").to_pydatetime()
        elif r.get("ts"):
            ts = pd.Timestamp(r["ts"]).tz_localize("UTC").to_pydatetime()
        else:
            ts = datetime.combine(date.fromisoformat(r["date"]), NOON_EASTERN, eastern).astimezone(UTC)
        text = str(r[text_col]).strip()
        if path.name.startswith("reuters__"):
            text = detokenise(text)
        if not text:
            continue
        rows.append(
            {
                "id": f"{path.name.split('.')[0]}:{i}",
                "text": text,
                "published_at": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "source": str(r.get("source") or path.name.split("__")[0]),
                "url": (r.get("url") or r.get("link") or None),
            }
        )
    return rows


def scored_rows(path: Path, model_dir: Path = SHIPPED_MODEL_DIR) -> list[dict[str, Any]]:
    """``news.scored`` records of one events file: normalized, tickers found, scored (cached per model)."""
    from finsentry.ingest.contract import NewsRaw
    from finsentry.ingest.scorer_service import load_company_table
    from finsentry.ingest.settings import IngestSettings
    from finsentry.ingest.validation import normalize_item
    from finsentry.model.scorer import Scorer
    from finsentry.model.settings import ModelSettings

    settings = ModelSettings(path=model_dir)
    card = json.loads((Path(model_dir) / "labels.json").read_text(encoding="utf-8"))
    digest = hashlib.sha256(path.read_bytes() + json.dumps(card, sort_keys=True).encode()).hexdigest()[:16]
    cache = CACHE_DIR / f"{path.name.split('.')[0]}-{digest}.jsonl"
    if cache.is_file():
        return [json.loads(line) for line in cache.read_text(encoding="utf-8").splitlines()]
    companies = load_company_table(IngestSettings().company_table)
    items = []
    for row in load_rows(path):
        raw = NewsRaw.model_validate({k: v for k, v in row.items() if v is not None}, strict=False)
        items.append(normalize_item(raw, companies).to_dict())
    scorer = Scorer.from_settings(settings)
    out = []
    for start in range(0, len(items), 256):
        chunk = items[start : start + 256]
        for item, pred in zip(chunk, scorer.predict([c["text"] for c in chunk]), strict=True):
            out.append(item | pred.to_dict())
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cache.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out), encoding="utf-8")
    return out


def _in_windows(t: pd.Timestamp, windows: tuple[tuple[date, date], ...]) -> bool:
    d = t.tz_convert("UTC").date()
    return any(a <= d <= b for a, b in windows)


def fits(key: str, stream: Stream) -> bool:
    """Whether a spike on ``key`` is about ``stream``'s event: ``all``, a fitting topic or a fitting ticker."""
    if key == "all":
        return True
    kind, _, name = key.partition(":")
    return (kind == "topic" and name in stream.topics) or (kind == "ticker" and name in stream.tickers)


def evaluate(stream: Stream, records: list[dict[str, Any]], settings: MonitorSettings) -> dict[str, Any]:
    """One stream's row: items/day, hit, hours to the first fitting alert, false alarms per week, spikes."""
    result = backfill(records, settings)
    times = pd.to_datetime([r["published_at"] for r in records], utc=True)
    span_days = max((times.max() - times.min()).total_seconds() / 86400, 1.0)
    starts = [e for e in result.events if e.event == "started"]
    window_start = pd.Timestamp(datetime.combine(stream.windows[0][0], time(0), UTC))
    hits, false_alarms, ticker_false, other = [], [], [], []
    for e in starts:
        t = pd.Timestamp(e.bucket_end, unit="s", tz="UTC")
        inside = _in_windows(t, stream.windows)
        if inside and fits(e.key, stream):
            hits.append((t, e))
        elif not inside and e.key.startswith("ticker:"):
            ticker_false.append((t, e))
        elif not inside:
            false_alarms.append((t, e))
        else:
            other.append((t, e))
    first = min(hits, key=lambda h: h[0]) if hits else None
    weeks = span_days / 7
    return {
        "stream": stream.name,
        "event": stream.event,
        "items": len(records),
        "days": round(span_days, 1),
        "items_per_day": round(len(records) / span_days),
        "hit": bool(hits),
        "first_alert_hours": None if first is None else round((first[0] - window_start).total_seconds() / 3600, 1),
        "first_alert_key": None if first is None else first[1].key,
        "false_alarms": len(false_alarms),
        "false_alarms_per_week": round(len(false_alarms) / weeks, 2),
        "ticker_false_alarms_per_week": round(len(ticker_false) / weeks, 2),
        "spikes": [
            {
                "key": e.key,
                "start": t.isoformat(),
                "z": round(e.z, 2) if e.z is not None else None,
                "kind": kind,
                "scale": e.window_seconds,
                "trigger": e.trigger,
                "items": e.items,
                "negative": e.negative,
                "baseline": None if e.baseline_mean is None else round(e.baseline_mean, 3),
            }
            for kind, group in (
                ("hit", hits),
                ("false", false_alarms),
                ("ticker_false", ticker_false),
                ("other_in_window", other),
            )
            for t, e in group
        ],
        "late": result.stats.get("late", 0),
    }


def markdown(rows: list[dict[str, Any]], label: str, settings_note: str) -> str:
    """The Markdown table of :func:`evaluate` rows, with totals."""
    lines = [
        f"### {label}",
        "",
        settings_note,
        "",
        "| stream | event | items/day | hit | first alert (h after window start) | key | false alarms/week (all+topic) "
        "| ticker false alarms/week |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        first = "-" if r["first_alert_hours"] is None else f"{r['first_alert_hours']:.1f}"
        lines.append(
            f"| {r['stream']} | {r['event']} | {r['items_per_day']} | {'yes' if r['hit'] else 'no'} | {first} | "
            f"{r['first_alert_key'] or '-'} | {r['false_alarms_per_week']:.2f} ({r['false_alarms']}) | "
            f"{r['ticker_false_alarms_per_week']:.2f} |"
        )
    hits = sum(r["hit"] for r in rows)
    timely = sum(1 for r in rows if r["first_alert_hours"] is not None and r["first_alert_hours"] < 48)
    worst = max(r["false_alarms_per_week"] for r in rows)
    lines += [
        "",
        f"Hits: **{hits} of {len(rows)}** (first alert within the window's first two days: {timely}); "
        f"worst false alarms per week on `all` + topic keys: **{worst:.2f}**.",
    ]
    return "\n".join(lines)


def record(section_md: str) -> None:
    """Replace (or add) this label's block in RESULTS.md's "Alert quality on real event streams" section."""
    head = "## Alert quality on real event streams"
    text = RESULTS.read_text(encoding="utf-8")
    label_line = section_md.splitlines()[0]
    if head not in text:
        text = text.rstrip() + f"\n\n{head}\n\nWritten by `python benchmarks/events.py --record LABEL`.\n"
    start = text.find(label_line)
    if start >= 0:
        end = text.find("\n### ", start + 1)
        end2 = text.find("\n## ", start + 1)
        ends = [e for e in (end, end2) if e >= 0]
        stop = min(ends) if ends else len(text)
        text = text[:start] + section_md + "\n" + text[stop:]
    else:
        at = text.find(head) + len(head)
        nxt = text.find("\n## ", at)
        nxt = len(text) if nxt < 0 else nxt
        text = text[:nxt].rstrip() + "\n\n" + section_md + "\n" + text[nxt:]
    RESULTS.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=Path, default=EVENTS_DIR)
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR)
    parser.add_argument("--preset", default=None, help="a monitor preset instead of the defaults")
    parser.add_argument("--only", default=None, help="substring of the stream names to run")
    parser.add_argument("--record", default=None, metavar="LABEL", help="write the table into RESULTS.md")
    parser.add_argument("--spikes-out", type=Path, default=None, help="JSON file of every stream's spikes")
    args = parser.parse_args(argv)
    if not args.events.is_dir():
        parser.error(f"{args.events}: no events folder (the shared development data, ../shared/data/events/)")
    settings = preset(args.preset) if args.preset else MonitorSettings()
    rows = []
    for stream in STREAMS:
        if args.only and args.only not in stream.name:
            continue
        records = scored_rows(args.events / stream.file, args.model)
        rows.append(evaluate(stream, records, settings))
        r = rows[-1]
        print(
            f"{r['stream']:40s} {r['items_per_day']:5d}/day hit={r['hit']!s:5s} first={r['first_alert_hours']}h "
            f"({r['first_alert_key']}) fa/wk={r['false_alarms_per_week']} ticker_fa/wk="
            f"{r['ticker_false_alarms_per_week']}",
            flush=True,
        )
        for s in r["spikes"]:
            print(
                f"    {s['kind']:16s} {s['start']} {s['key']} z={s['z']} {s['trigger']}@{s['scale']} "
                f"{s['negative']}/{s['items']} base={s['baseline']}"
            )
    note = (
        f"Settings: {'preset ' + args.preset if args.preset else 'defaults'} "
        f"(`{MonitorSettings.__name__}`), model `{Path(args.model).resolve().name}`, "
        f"run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC."
    )
    md = markdown(rows, args.record or "run", note)
    print(md)
    if args.spikes_out:
        args.spikes_out.write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    if args.record:
        record(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
