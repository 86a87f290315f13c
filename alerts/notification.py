"""One readable notification per Alertmanager group, rendered as plain text, JSON and a Slack message.

The title follows Alertmanager's default (``[FIRING:2] NegativeSentimentSpike topic:earnings``); the body lists
each alert (summary, description with the numbers, since / until, runbook) and, per aggregate key, the
spike's numbers and its most negative headlines with links, each followed by the words that drove its negative
score when the monitor attributed them (``[plunge, lawsuit, misses]``; :mod:`finsentry.model.attribution`).

Every value taken from the webhook or the monitor (labels, annotations, headlines, URLs) goes through
:func:`printable` before it enters the title or a line of the text: a line break, another control character or
a Unicode direction control is written as an escape (``\\n``, ``\\u202e``), so a label cannot add a line of its
own (a forged ``[FIRING:1] ...`` notification on stdout, an extra header in an email) or reorder what is shown.
The JSON document keeps the values but without direction controls (:func:`without_direction_controls`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from finsentry.alerts.evidence import Evidence
from finsentry.alerts.payload import Alert, WebhookPayload
from finsentry.ingest.normalize import DIRECTION_CONTROLS
from finsentry.model.attribution import words_label
from finsentry.monitor.spikes import figures_text

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNSAFE_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})  # control characters, line and paragraph separators
_NO_DIRECTION = dict.fromkeys(map(ord, DIRECTION_CONTROLS))


def printable(text: str) -> str:
    """``text`` safe on one line of a plain-text notification: line breaks (``\\n``, ``\\r``, U+2028 ...), tabs,
    other control characters and direction controls (:data:`~finsentry.ingest.normalize.DIRECTION_CONTROLS`)
    written as escapes; everything else unchanged.

    >>> printable("Spike\\n[FIRING:1] Forged")
    'Spike\\\\n[FIRING:1] Forged'
    >>> printable("acme \\u202egninrae"), printable("M&A | Investments")
    ('acme \\\\u202egninrae', 'M&A | Investments')
    """
    if text.isprintable():  # the common case; direction controls are not printable (category Cf)
        return text
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch in DIRECTION_CONTROLS or unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def without_direction_controls(text: str) -> str:
    """``text`` with the Unicode direction controls removed (for the JSON document, which escapes the rest).

    >>> without_direction_controls("a\\u202eb\\u2069")
    'ab'
    """
    return text.translate(_NO_DIRECTION)


def _clean_map(values: dict[str, str]) -> dict[str, str]:
    return {without_direction_controls(k): without_direction_controls(v) for k, v in values.items()}


def _utc(ts: datetime | None) -> str:
    if ts is None or ts.year < 1971:  # Alertmanager sends 0001-01-01T00:00:00Z for "not ended"
        return ""
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(UTC).isoformat() if _utc(ts) else None


def _runbook(alert: Alert, base: str) -> str:
    url = alert.annotations.get("runbook_url", "")
    if url and base and "://" not in url:
        return base + url.lstrip("/")
    return url


def _when(value: Any) -> str:
    """``YYYY-MM-DD HH:MM UTC`` of an ISO-8601 string (as the console prints it)."""
    return printable(str(value).replace("T", " ")[:16]) + " UTC" if value else "?"


def spike_lines(ev: Evidence) -> list[str]:
    """The spike record behind an alert, one figure set a line: the start, the peak and (once the spike has moved
    on from its start) the figures now, which say that they are current, decaying values when below the peak.

    Figures as :func:`~finsentry.monitor.spikes.figures_text` writes them (the console's form): z to one decimal,
    shares as whole percents, counts of distinct stories.
    """
    s = ev.spike or {}
    start, peak = s.get("start"), s.get("peak")
    if not isinstance(start, dict):
        return [f"spike figures: {printable(figures_text(s))} at {_when(s.get('bucket_end'))}"] if s else []
    peak = peak if isinstance(peak, dict) else start
    scale = f"{start.get('window_seconds')} s window, {start.get('trigger') or 'share'} test"
    lines = [
        f"Spike {printable(str(s.get('spike_id', '')))} ({printable(scale)}):",
        f"  start {_when(start.get('bucket_end'))}: {printable(figures_text(start))}",
        f"  peak  {_when(peak.get('bucket_end'))}: {printable(figures_text(peak, baseline=False))}",
    ]
    if s.get("bucket_end") != start.get("bucket_end"):
        z, peak_z = s.get("z"), peak.get("z")
        if s.get("event") == "ended":
            note = "  (the spike has ended)"
        elif not isinstance(z, int | float) or not isinstance(peak_z, int | float) or z < peak_z:
            note = "  (current values of a decaying spike, not its start)"
        else:
            note = "  (current values)"
        lines.append(f"  now   {_when(s.get('bucket_end'))}: {printable(figures_text(s, baseline=False))}{note}")
    return lines


@dataclass(frozen=True)
class Notification:
    """A rendered notification of one alert group.

    Attributes:
        group_key: Alertmanager's group key (stable per group; also the Kafka message key).
        status: ``firing`` (at least one alert firing) or ``resolved``.
        title: one line, e.g. ``[RESOLVED] MarketNegativeSpike all``.
        text: the full plain-text body (stdout and email).
        payload: the validated webhook payload.
        evidence: per aggregate key found in the alerts' ``key`` labels.
        runbook_base_url: prefix applied to relative runbook links.
    """

    group_key: str
    status: str
    title: str
    text: str
    payload: WebhookPayload
    evidence: dict[str, Evidence]
    runbook_base_url: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON document sent to webhook and Kafka sinks.

        Shape: ``{group_key, status, title, text, receiver, group_labels, external_url, alerts: [{status,
        labels, annotations, starts_at, ends_at, runbook_url}], evidence: {key: Evidence.to_json()}}``;
        times are ISO-8601 UTC strings (``ends_at`` null while firing).
        """
        return {
            "group_key": self.group_key,
            "status": self.status,
            "title": self.title,
            "text": self.text,
            "receiver": without_direction_controls(self.payload.receiver),
            "group_labels": _clean_map(self.payload.groupLabels),
            "external_url": without_direction_controls(self.payload.externalURL),
            "alerts": [
                {
                    "status": a.status,
                    "labels": _clean_map(a.labels),
                    "annotations": _clean_map(a.annotations),
                    "starts_at": _iso(a.startsAt),
                    "ends_at": _iso(a.endsAt) if a.status == "resolved" else None,
                    "runbook_url": without_direction_controls(_runbook(a, self.runbook_base_url)),
                }
                for a in self.payload.alerts
            ],
            "evidence": {k: ev.to_json() for k, ev in self.evidence.items()},
        }

    def slack_message(self) -> dict[str, Any]:
        """A Slack incoming-webhook body: ``text`` (fallback) plus ``blocks`` in mrkdwn with linked headlines."""
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
        ]
        for a in self.payload.alerts:
            icon = ":red_circle:" if a.status == "firing" else ":large_green_circle:"
            lines = [f"{icon} *{_slack_escape(a.annotations.get('summary', a.name))}*"]
            if a.annotations.get("description"):
                lines.append(_slack_escape(a.annotations["description"]))
            figures = prometheus_figures(a, self.evidence)
            if figures:
                lines.append(f"As Prometheus last evaluated: {_slack_escape(figures)}")
            runbook = _slack_escape(_runbook(a, self.runbook_base_url))
            if runbook:
                lines.append(f"<{runbook}|runbook>" if "://" in runbook else f"runbook: {runbook}")
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}})
        for key, ev in self.evidence.items():
            lines = [_slack_escape(line) for line in spike_lines(ev)]
            lines.append(f"*Most negative headlines for {_slack_escape(key)}*")
            for h in ev.headlines:
                text = _slack_escape(h.text)
                url = _slack_escape(h.url) if h.url else ""
                words = f" _{_slack_escape(words_label(h.words))}_" if h.words else ""
                lines.append(f"• `{h.sentiment_score:+.2f}` " + (f"<{url}|{text}>" if url else text) + words)
            if ev.error:
                lines.append(f"_evidence unavailable: {_slack_escape(ev.error)}_")
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}})
        return {"text": self.title, "blocks": blocks[:50]}


def _slack_escape(text: str) -> str:
    """``text`` for Slack mrkdwn: :func:`printable`, and ``&``, ``<``, ``>`` as entities (no forged links)."""
    return printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _title(payload: WebhookPayload) -> str:
    firing = sum(1 for a in payload.alerts if a.status == "firing")
    status = f"FIRING:{firing}" if payload.status == "firing" else "RESOLVED"
    labels = " ".join(printable(v) for _, v in sorted(payload.groupLabels.items()))
    if not labels:
        labels = printable(payload.commonLabels.get("alertname", ""))
    return f"[{status}] {labels}".rstrip()


PEAK_AND_NOW = "peak_and_now"
"""Annotation of the spike alerts with the peak and current figures as Prometheus last evaluated them
(``alerts/alerting_rules.yml``); shown only where the relay lacks the alert's spike record
(:func:`prometheus_figures`)."""


def prometheus_figures(a: Alert, evidence: dict[str, Evidence]) -> str:
    """The alert's :data:`PEAK_AND_NOW` annotation, or ``""`` when ``evidence`` holds the record of the same spike.

    Prometheus evaluates the annotation when the alert fires (and last before it resolves), the relay reads the
    spike record when it delivers: two moments, two sets of figures for one spike (at the demo's replay speed,
    hours of event time apart). Where the record is there, its timed start / peak / now lines
    (:func:`spike_lines`) are the only figures a notification shows; the annotation stays in the JSON document.

    >>> alert = Alert(status="firing", labels={"key": "all", "spike_id": "all@t"},
    ...               annotations={PEAK_AND_NOW: "Peak z 3.3"}, startsAt="2023-03-10T18:45:00Z")
    >>> prometheus_figures(alert, {"all": Evidence("all", spike={"spike_id": "all@t"})})
    ''
    >>> prometheus_figures(alert, {"all": Evidence("all", error="not seen")})
    'Peak z 3.3'
    """
    figures = a.annotations.get(PEAK_AND_NOW, "")
    ev = evidence.get(a.labels.get("key", ""))
    spike_id = a.labels.get("spike_id")
    if figures and ev is not None and ev.spike and spike_id and ev.spike.get("spike_id") == spike_id:
        return ""
    return figures


def _alert_text(a: Alert, runbook_base: str, evidence: dict[str, Evidence]) -> list[str]:
    head = printable(a.annotations.get("summary") or a.name)
    severity = printable(a.labels.get("severity", ""))
    when = f"since {_utc(a.startsAt)}"
    if a.status == "resolved" and _utc(a.endsAt):
        when += f", resolved {_utc(a.endsAt)}"
    lines = [f"{a.status.upper()}: {head} ({', '.join(p for p in (severity, when) if p)})"]
    if a.annotations.get("description"):
        lines.append(f"  {printable(a.annotations['description'])}")
    figures = prometheus_figures(a, evidence)
    if figures:
        lines.append(f"  As Prometheus last evaluated: {printable(figures)}")
    runbook = printable(_runbook(a, runbook_base))
    if runbook:
        lines.append(f"  Runbook: {runbook}")
    lines.append(f"  Labels: {', '.join(f'{printable(k)}={printable(v)}' for k, v in sorted(a.labels.items()))}")
    return lines


def _evidence_text(ev: Evidence) -> list[str]:
    lines = spike_lines(ev)
    lines.append(
        f"Most negative headlines for {printable(ev.key)}"
        + (" (the stories that started it)" if ev.spike else "")
        + ":"
    )
    for i, h in enumerate(ev.headlines, 1):
        words = f"  {printable(words_label(h.words))}" if h.words else ""
        lines.append(f"  {i}. [{h.sentiment_score:+.2f}] {printable(h.text)}{words}")
        details = [printable(p) for p in (h.published_at, h.url) if p]
        if details:
            lines.append(f"     {'  '.join(details)}")
    if ev.error:
        lines.append(f"  (evidence unavailable: {printable(ev.error)})")
    elif not ev.headlines:
        lines.append("  (no headlines recorded)")
    return lines


def build_notification(
    payload: WebhookPayload, evidence: dict[str, Evidence], runbook_base_url: str = "", dashboard_url: str = ""
) -> Notification:
    """Render the group in ``payload`` with ``evidence`` (by aggregate key) into a :class:`Notification`;
    ``dashboard_url`` (the monitor's base URL) is linked when there is evidence."""
    title = _title(payload)
    lines = [title, ""]
    for status in ("firing", "resolved"):
        for a in payload.alerts:
            if a.status == status:
                lines.extend(_alert_text(a, runbook_base_url, evidence))
                lines.append("")
    for ev in evidence.values():
        lines.extend(_evidence_text(ev))
        lines.append("")
    if payload.truncatedAlerts:
        lines.append(f"({payload.truncatedAlerts} more alerts in this group were left out by Alertmanager)")
    if evidence and dashboard_url:
        lines.append(f"Dashboard: {printable(dashboard_url.rstrip('/'))}/")
    if payload.externalURL:
        lines.append(f"Alertmanager: {printable(payload.externalURL)}")
    return Notification(
        group_key=payload.groupKey,
        status=payload.status,
        title=title,
        text="\n".join(lines).rstrip() + "\n",
        payload=payload,
        evidence=evidence,
        runbook_base_url=runbook_base_url,
    )
