// finsentry live dashboard: polls the monitor's JSON API every 2 s and draws with plain SVG (no libraries).
//
// Reads (shapes in docs/contracts.md): /api/health, /api/trends, /api/spikes?state=all, /api/detectors,
// /api/keys/<key>/buckets, and /api/pipeline (added by `finsentry run`; absent on a bare `finsentry aggregator`,
// then the scorer's numbers show as n/a). Trend lines are rolling sums over each configured window computed
// from the key's bucket history, like monitor.rolling.trend_frame: a regular grid of buckets (missing ones
// count as empty), a window of W / bucket_seconds buckets ending at each bucket, partial at the start.
// Every drawn series and number carries its raw value in a data-* attribute (the browser test reads them).
"use strict";

const POLL_MS = 2000;
const TICKER_MIN_ITEMS = 5; // a ticker needs this many items in the window to be ranked
const TICKER_ROWS = 10;
const SPIKE_ROWS = 30;
const SPIKE_EVENTS = 1000;
const SVG_NS = "http://www.w3.org/2000/svg";
// The 20 topic names of the twitter-financial-news-topic taxonomy, shown verbatim; keys carry their slugs.
const TOPICS = [
  "Analyst Update", "Fed | Central Banks", "Company | Product News", "Treasuries | Corporate Debt", "Dividend",
  "Earnings", "Energy | Oil", "Financials", "Currencies", "General News | Opinion", "Gold | Metals | Materials",
  "IPO", "Legal | Regulation", "M&A | Investments", "Macro", "Markets", "Politics", "Personnel Change",
  "Stock Commentary", "Stock Movement",
];
const slugify = (name) => name.toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "");
const TOPIC_NAMES = Object.fromEntries(TOPICS.map((t) => [slugify(t), t]));

const ui = {
  key: "all",
  missingKey: null, // a key the URL named that the aggregator does not hold (then `all` is charted)
  window: null,
  windows: [],
  keys: [],
  prev: null, // {t (ms), scored} of the previous poll, for the rate
  busy: false,
  paused: false, // "pause" freezes the view: no polls, no re-renders, until "resume"
  data: null,
};

// ---------------------------------------------------------------- helpers
const $ = (id) => document.getElementById(id);

async function getJSON(path, optional = false) {
  const resp = await fetch(path, { cache: "no-store" });
  if (optional && resp.status === 404) return null;
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
}

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "text") node.textContent = v;
    else if (k === "cls") node.setAttribute("class", v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function setValue(id, value, text) {
  const node = $(id);
  node.dataset.value = value === null || value === undefined ? "" : String(value);
  node.textContent = text !== undefined ? text : value === null || value === undefined ? "n/a" : fmtInt(value);
}

const fmtInt = (n) => (n === null || n === undefined ? "n/a" : Number(n).toLocaleString("en-US"));
/** x with `digits` decimals, never "-0.00": a value that rounds to zero is shown unsigned. */
const fixed = (x, digits) => {
  const s = x.toFixed(digits);
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
};
const fmtPct = (x) => (x === null || x === undefined ? "–" : `${fixed(100 * x, 0)}%`);
const fmtScore = (x) => {
  if (x === null || x === undefined) return "–";
  const s = fixed(x, 2);
  return Number(s) > 0 ? "+" + s : s;
};
const fmtZ = (z) => (z === null || z === undefined ? "–" : fixed(z, 1));
/** "1 item", "2 items", "1,234 items". */
const plural = (n, one, many = one + "s") => `${fmtInt(n)} ${Number(n) === 1 ? one : many}`;
const fmtSec = (s) => (s === null || s === undefined ? "–" : s < 1 ? `${(1000 * s).toFixed(0)} ms` : `${s.toFixed(2)} s`);
const epoch = (iso) => Date.parse(iso) / 1000;
const fmtTime = (iso) => (iso ? iso.replace("T", " ").slice(0, 16) + " UTC" : "–");
/** A duration in seconds as "45 min", "5 h", "2 d 3 h". */
function fmtSpan(sec) {
  if (sec < 3600) return `${Math.round(sec / 60)} min`;
  if (sec < 86400) return `${fixed(sec / 3600, sec % 3600 ? 1 : 0)} h`;
  const d = Math.floor(sec / 86400), h = Math.round((sec % 86400) / 3600);
  return h ? `${d} d ${h} h` : `${d} d`;
}
const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

function keyLabel(key) {
  if (key.startsWith("topic:")) return TOPIC_NAMES[key.slice(6)] || key.slice(6);
  if (key.startsWith("ticker:")) return "$" + key.slice(7);
  return key === "all" ? "all news" : key;
}

// ---------------------------------------------------------------- URL hash
// The hash names the charted key and, optionally, the window: #all, #topic:markets, #ticker:AAPL (or #$AAPL),
// #ticker:AAPL&window=7d; the older #key=ticker%3AAAPL&window=1d is read too. Selecting a key writes it back.
function decodePart(s) {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "));
  } catch {
    return s;
  }
}

/** A key as typed in the hash: "$AAPL" is ticker:AAPL; anything else is taken as it is. */
function keyFromHash(s) {
  const v = s.trim();
  return /^\$[A-Za-z0-9.\-]+$/.test(v) ? "ticker:" + v.slice(1).toUpperCase() : v;
}

/** {key, window} named by a location hash (either absent when not given). */
function parseHash(hash) {
  const out = {};
  for (const part of hash.replace(/^#/, "").split("&")) {
    if (!part) continue;
    const eq = part.indexOf("=");
    const name = eq >= 0 ? decodePart(part.slice(0, eq)) : "key";
    const value = decodePart(eq >= 0 ? part.slice(eq + 1) : part);
    if (name === "key" && value.trim()) out.key = keyFromHash(value);
    else if (name === "window" && value) out.window = value;
  }
  return out;
}

/** The hash of a key and window: "#ticker:AAPL", with "&window=7d" when the window is not the first one. */
function hashOf(key, window) {
  const k = encodeURIComponent(key).replace(/%3A/gi, ":").replace(/%24/g, "$");
  return `#${k}` + (window && window !== ui.windows[0] ? `&window=${encodeURIComponent(window)}` : "");
}

/** Seconds of a window name such as 5m, 1h, 1d, 90m, 45s (monitor.settings.window_name). */
function windowSeconds(name) {
  const m = /^(\d+)([smhd])$/.exec(name);
  if (!m) return null;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
}

/**
 * Rolling views of one key from its bucket history.
 * @param {Array} buckets [{start (ISO), items, negative, neutral, positive, score_sum}] oldest first
 * @param {number} bucketSeconds bucket size, seconds
 * @param {number} windowSec window length, seconds (a multiple of the bucket)
 * @returns {Array} per grid bucket {t (epoch s), items, negative, neutral, positive, w: {items, negRatio, mean}}
 */
function rolling(buckets, bucketSeconds, windowSec) {
  if (!buckets.length) return [];
  const byStart = new Map(buckets.map((b) => [epoch(b.start), b]));
  const t0 = epoch(buckets[0].start);
  const t1 = epoch(buckets[buckets.length - 1].start);
  const n = Math.max(1, Math.round(windowSec / bucketSeconds));
  const grid = [];
  for (let t = t0; t <= t1; t += bucketSeconds) {
    const b = byStart.get(t) || { items: 0, negative: 0, neutral: 0, positive: 0, score_sum: 0 };
    grid.push({ t, items: b.items, negative: b.negative, neutral: b.neutral, positive: b.positive, score: b.score_sum });
  }
  let items = 0, negative = 0, score = 0;
  return grid.map((g, i) => {
    items += g.items; negative += g.negative; score += g.score;
    if (i >= n) {
      const old = grid[i - n];
      items -= old.items; negative -= old.negative; score -= old.score;
    }
    return { ...g, w: { items, negRatio: items > 0 ? negative / items : null, mean: items > 0 ? score / items : null } };
  });
}

/**
 * Spike episodes (started .. ended) from events newest first; active first, then by last event, newest first.
 * Events of one spike share its spike_id (older events without one are grouped by key).
 */
function episodes(events) {
  const open = new Map();
  const out = [];
  for (const e of [...events].reverse()) {
    const gid = e.spike_id || e.key;
    let ep = open.get(gid);
    if (e.event === "started" || !ep) {
      ep = { key: e.key, id: e.spike_id || "", started: e.event === "started" ? e : null, last: e, peak: e, ended: null };
      open.set(gid, ep);
      out.push(ep);
    }
    ep.last = e;
    if ((e.z ?? -Infinity) > (ep.peak.z ?? -Infinity)) ep.peak = e;
    if (e.event === "ended") {
      ep.ended = e;
      open.delete(gid);
    }
  }
  return out.sort((a, b) => (!!a.ended - !!b.ended) || epoch(b.last.bucket_end) - epoch(a.last.bucket_end));
}

// ---------------------------------------------------------------- drawing
function clear(svg) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const w = Math.max(300, Math.round(svg.getBoundingClientRect().width || 900));
  const h = Math.round(svg.getBoundingClientRect().height || 200);
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  return { w, h };
}

function pathOf(points) {
  let d = "", pen = false;
  for (const [x, y] of points) {
    if (y === null) { pen = false; continue; }
    d += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
    pen = true;
  }
  return d;
}

const TICK_STEPS = [900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 14 * 86400];
const TICK_CHAR_PX = 6.2; // width of one character of an 11 px axis label (a little more than DejaVu Sans)

/**
 * Time-axis ticks over [t0, t1] for a plot `plotWidth` px wide: the finest step of TICK_STEPS whose labels do
 * not overlap (at least their width plus a gap apart), so a short history early in a run gets a few
 * readable ticks rather than one per quarter hour on top of each other.
 */
function timeTicks(t0, t1, plotWidth) {
  const span = Math.max(1, t1 - t0);
  const room = (step) => (step / span) * plotWidth;
  const step = TICK_STEPS.find((s) => room(s) >= TICK_CHAR_PX * (s >= 86400 ? 9 : 11) + 10) || TICK_STEPS.at(-1);
  const ticks = [];
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) ticks.push(t);
  return { ticks, step };
}

/** "08-24 Mon" for day steps; "14:00" within a day, with the date on the first tick and at midnight. */
function tickLabel(t, step, first = false) {
  const d = new Date(t * 1000);
  const day = `${String(d.getUTCMonth() + 1).padStart(2, "0")}-${String(d.getUTCDate()).padStart(2, "0")}`;
  if (step >= 86400) return `${day} ${DAYS[d.getUTCDay()]}`;
  const hm = `${String(d.getUTCHours()).padStart(2, "0")}:${String(d.getUTCMinutes()).padStart(2, "0")}`;
  return first || t % 86400 === 0 ? `${day} ${hm}` : hm;
}

/** The start (epoch s) of the first row whose window of `windowSec` lies wholly after `historyStart`, or null. */
function fullFrom(rows, bucketSeconds, windowSec, historyStart) {
  if (historyStart === null) return rows.length ? rows[0].t : null;
  const row = rows.find((r) => r.t + bucketSeconds - windowSec >= historyStart);
  return row ? row.t : null;
}

const PAD = { l: 46, r: 46, t: 10, b: 22 };

/**
 * The trend chart. A window that starts before `historyStart` (epoch s; the API's history_start) is partial:
 * that part of each line is drawn dotted and faded (a clipped copy of the same path), the rest as usual.
 */
function drawTrend(rows, spikes, bucketSeconds, windows, historyStart) {
  const svg = $("trend-chart");
  const { w, h } = clear(svg);
  if (!rows.length) {
    svg.append(el("svg:text", { x: w / 2, y: h / 2, "text-anchor": "middle", cls: "empty", text: "waiting for data…" }));
    return;
  }
  const t0 = rows[0].t, t1 = rows[rows.length - 1].t + bucketSeconds;
  const x = (t) => PAD.l + ((t - t0) / (t1 - t0)) * (w - PAD.l - PAD.r);
  const yShare = (v) => PAD.t + (1 - v) * (h - PAD.t - PAD.b);
  const yScore = (v) => yShare((v + 1) / 2);
  for (const ep of spikes) {
    // its "started" event, else the record's start that every event carries (a spike open longer than the
    // event history, as in the table), else the oldest event kept
    const a = ep.started ? epoch(ep.started.bucket_start)
      : ep.last.start ? epoch(ep.last.start.bucket_end) - bucketSeconds : epoch(ep.last.bucket_start);
    const b = ep.ended ? epoch(ep.ended.bucket_start) : t1;
    if (b < t0 || a > t1) continue;
    svg.append(el("svg:rect", {
      cls: "spike-band", x: x(Math.max(a, t0)), y: PAD.t, width: Math.max(2, x(Math.min(b, t1)) - x(Math.max(a, t0))),
      height: h - PAD.t - PAD.b, "data-key": ep.key, "data-start": a,
    }));
  }
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(el("svg:line", { cls: "axis", x1: PAD.l, x2: w - PAD.r, y1: yShare(v), y2: yShare(v) }));
    svg.append(el("svg:text", { cls: "tick", x: PAD.l - 6, y: yShare(v) + 4, "text-anchor": "end", text: fmtPct(v) }));
    svg.append(el("svg:text", { cls: "tick", x: w - PAD.r + 6, y: yShare(v) + 4, text: fmtScore(2 * v - 1) }));
  }
  const { ticks, step } = timeTicks(t0, t1, w - PAD.l - PAD.r);
  ticks.forEach((t, k) => {
    svg.append(el("svg:line", { cls: "axis", x1: x(t), x2: x(t), y1: PAD.t, y2: h - PAD.b }));
    const label = tickLabel(t, step, k === 0);
    if (x(t) + 3 + TICK_CHAR_PX * label.length < w) {
      svg.append(el("svg:text", { cls: "tick", x: x(t) + 3, y: h - 6, text: label, "data-t": t }));
    }
  });
  const defs = el("svg:defs");
  svg.append(defs);
  const mid = (r) => x(r.t + bucketSeconds);
  const partial = {};
  windows.forEach((name, i) => {
    const series = rows.map((r) => r.views[name]);
    const dash = i > 0 ? " dash" : "";
    const from = fullFrom(rows, bucketSeconds, windowSeconds(name), historyStart);
    // the line as usual from the first full window on; a dotted, faded copy before it (the partial windows)
    const cut = from === null ? w : rows[0].t === from ? 0 : mid(rows.find((r) => r.t === from));
    const full = `clip-full-${i}`, part = `clip-partial-${i}`;
    defs.append(el("svg:clipPath", { id: full }, el("svg:rect", { x: cut, y: 0, width: Math.max(0, w - cut), height: h })));
    defs.append(el("svg:clipPath", { id: part }, el("svg:rect", { x: 0, y: 0, width: cut, height: h })));
    const partialRows = from === null ? rows.length : rows.findIndex((r) => r.t === from);
    partial[name] = partialRows; // the first rows, whose window starts before the history
    for (const [measure, cls, value, y] of [
      ["negative_ratio", "share", (v) => v.negRatio, yShare],
      ["mean_score", "score", (v) => v.mean, yScore],
    ]) {
      const d = pathOf(rows.map((r, j) => [mid(r), value(series[j]) === null ? null : y(value(series[j]))]));
      svg.append(el("svg:path", {
        cls: cls + dash, d, "clip-path": `url(#${full})`,
        "data-window": name, "data-measure": measure,
        "data-series": JSON.stringify(rows.map((r, j) => [r.t, value(series[j])])),
        "data-full-from": from === null ? "" : from,
      }));
      if (cut > 0) {
        svg.append(el("svg:path", {
          cls: `${cls} partial${dash}`, d, "clip-path": `url(#${part})`,
          "data-partial-window": name, "data-partial-measure": measure, "data-rows": partialRows,
        }));
      }
    }
  });
  drawVolume(rows, bucketSeconds, t0, t1);
  return partial;
}

function drawVolume(rows, bucketSeconds, t0, t1) {
  const svg = $("volume-chart");
  const { w, h } = clear(svg);
  const max = Math.max(1, ...rows.map((r) => r.items));
  const x = (t) => PAD.l + ((t - t0) / (t1 - t0)) * (w - PAD.l - PAD.r);
  const y = (v) => PAD.t + (1 - v / max) * (h - PAD.t - PAD.b);
  const bw = Math.max(1, x(t0 + bucketSeconds) - x(t0) - 1);
  svg.append(el("svg:line", { cls: "axis", x1: PAD.l, x2: w - PAD.r, y1: y(0), y2: y(0) }));
  svg.append(el("svg:text", { cls: "tick", x: PAD.l - 6, y: y(max) + 4, "text-anchor": "end", text: String(max) }));
  svg.append(el("svg:text", { cls: "tick", x: PAD.l - 6, y: y(0) + 4, "text-anchor": "end", text: "0" }));
  const bars = el("svg:g", { "data-series": JSON.stringify(rows.map((r) => [r.t, r.items, r.negative])) });
  for (const r of rows) {
    let base = 0;
    for (const [cls, v] of [["bar-neg", r.negative], ["bar-neu", r.neutral], ["bar-pos", r.positive]]) {
      if (!v) continue;
      bars.append(el("svg:rect", { cls, x: x(r.t), width: bw, y: y(base + v), height: y(base) - y(base + v) }));
      base += v;
    }
  }
  svg.append(bars);
}

function sparkline(rows, windowName) {
  const svg = el("svg:svg", { cls: "chart spark", viewBox: "0 0 200 46", preserveAspectRatio: "none" });
  if (!rows.length) return svg;
  const n = rows.length;
  const x = (i) => (n === 1 ? 100 : (i / (n - 1)) * 200);
  const y = (v) => 3 + (1 - v) * 40;
  const share = rows.map((r, i) => [x(i), r.views[windowName].negRatio === null ? null : y(r.views[windowName].negRatio)]);
  const score = rows.map((r, i) => [x(i), r.views[windowName].mean === null ? null : y((r.views[windowName].mean + 1) / 2)]);
  svg.append(el("svg:path", { cls: "score", d: pathOf(score) }));
  svg.append(el("svg:path", { cls: "share", d: pathOf(share) }));
  return svg;
}

function trendRows(buckets, bucketSeconds, windows) {
  const per = windows.map((name) => rolling(buckets, bucketSeconds, windowSeconds(name)));
  if (!per.length || !per[0].length) return [];
  return per[0].map((r, i) => ({ ...r, views: Object.fromEntries(windows.map((name, k) => [name, per[k][i].w])) }));
}

// ---------------------------------------------------------------- panels
function renderHeader(health, pipeline) {
  const versions = pipeline ? [pipeline.scorer.model_version] : health.model_versions;
  $("model-version").textContent = versions && versions.length ? versions.join(", ") : "–";
  $("model-version").dataset.value = versions ? versions.join(",") : "";
  $("watermark").textContent = fmtTime(health.watermark);
  $("watermark").dataset.value = health.watermark || "";
  $("status").textContent = health.status;
  $("updated").textContent = new Date().toLocaleTimeString();
  const r = pipeline && pipeline.replay;
  if (r && r.items) {
    const pct = ((100 * r.sent) / r.items).toFixed(0);
    $("replay").textContent = `${fmtInt(r.sent)} / ${fmtInt(r.items)} (${pct}%)${r.done ? " done" : ""}` +
      (r.event_time ? ` · at ${fmtTime(r.event_time)}` : "") + (r.speed ? ` · ${r.speed}x` : "");
    $("replay").dataset.value = String(r.sent);
  } else {
    $("replay").textContent = "–";
  }
}

function renderHealth(health, pipeline, activeEpisodes) {
  const now = Date.now();
  if (pipeline) {
    const s = pipeline.scorer;
    setValue("m-scored", s.scored);
    $("m-consumed").textContent = `consumed ${fmtInt(s.consumed)} · duplicates ${fmtInt(s.duplicates)}`;
    if (ui.prev && now > ui.prev.t) {
      const rate = ((s.scored - ui.prev.scored) * 1000) / (now - ui.prev.t);
      setValue("m-rate", rate, rate.toFixed(1));
    }
    ui.prev = { t: now, scored: s.scored };
    const rejected = Object.values(pipeline.aggregator.rejected).reduce((a, b) => a + b, 0);
    setValue("m-dlq", s.dead_letters_total + rejected);
    const reasons = Object.entries({ ...s.dead_letters, ...pipeline.aggregator.rejected })
      .sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, v]) => `${k} ${fmtInt(v)}`);
    $("m-dlq-reasons").textContent = reasons.length ? reasons.join(" · ") : "none";
    const lat = s.scored_latency_seconds;
    setValue("m-latency", lat.p95, lat.count ? `${fmtSec(lat.p50)} / ${fmtSec(lat.p95)}` : "–");
    const inf = s.inference_latency_seconds;
    $("m-inference").textContent = `p50 / p95 · inference ${fmtSec(inf.p95)} p95 per batch`;
  } else {
    for (const id of ["m-scored", "m-rate", "m-dlq", "m-latency"]) setValue(id, null);
    $("m-consumed").textContent = "scorer numbers: its own /metrics";
  }
  setValue("m-accepted", health.accepted);
  $("m-late").textContent = `late ${fmtInt(health.late)} · duplicates ${fmtInt(health.duplicates)}`;
  setValue("m-keys", health.keys);
  $("m-records").textContent = `records read ${fmtInt(health.records)}`;
  setValue("m-active", activeEpisodes.length);
  $("m-active-keys").textContent = activeEpisodes.map((e) => keyLabel(e.key)).join(", ") || "none";
  document.querySelector(".spikes-card").classList.toggle("alarm", activeEpisodes.length > 0);
}

function renderSelectors(trends) {
  const keys = Object.keys(trends.keys);
  const sig = keys.join("|");
  if (sig !== ui.keys.join("|")) {
    ui.keys = keys;
    const first = trends.windows[0];
    const topics = keys.filter((k) => k.startsWith("topic:")).sort((a, b) => keyLabel(a).localeCompare(keyLabel(b)));
    const tickers = keys.filter((k) => k.startsWith("ticker:"))
      .sort((a, b) => trends.keys[b][first].items - trends.keys[a][first].items);
    const sel = $("key-select");
    sel.replaceChildren(el("option", { value: "all", text: "all news" }));
    const tg = el("optgroup", { label: "topics" });
    topics.forEach((k) => tg.append(el("option", { value: k, text: keyLabel(k) })));
    const kg = el("optgroup", { label: "tickers (busiest first)" });
    tickers.forEach((k) => kg.append(el("option", { value: k, text: keyLabel(k) })));
    sel.append(tg, kg);
    sel.value = keys.includes(ui.key) ? ui.key : "all";
  }
  if (ui.windows.join("|") !== trends.windows.join("|")) {
    ui.windows = trends.windows;
    const ws = $("window-select");
    ws.replaceChildren(...trends.windows.map((w) => el("option", { value: w, text: w })));
    if (!ui.window || !trends.windows.includes(ui.window)) ui.window = trends.windows[0];
    ws.value = ui.window;
  }
}

function renderTrend(buckets, trends, allEpisodes) {
  const windows = [ui.window, ...ui.windows.filter((w) => w !== ui.window)];
  const rows = buckets ? trendRows(buckets.buckets, buckets.bucket_seconds, windows) : [];
  const keyEpisodes = allEpisodes.filter((e) => e.key === ui.key);
  const bucketSeconds = buckets ? buckets.bucket_seconds : 3600;
  const historyStart = buckets && buckets.history_start ? epoch(buckets.history_start) : null;
  const partial = drawTrend(rows, keyEpisodes, bucketSeconds, windows, historyStart) || {};
  $("trend-key").textContent = keyLabel(ui.key);
  const view = (trends.keys[ui.key] || {})[ui.window];
  // the chosen window now (the last row) is partial while the history is shorter than the window
  const nowPartial = rows.length > 0 && partial[ui.window] === rows.length;
  const held = rows.length ? rows[rows.length - 1].t + bucketSeconds - (historyStart ?? rows[0].t) : 0;
  const someWindows = Object.entries(partial).filter(([, n]) => n > 0).map(([name]) => name);
  const legend = $("trend-legend");
  legend.replaceChildren(
    el("span", {}, el("span", { cls: "sw", style: "border-color: var(--neg)" }), `negative share ${ui.window}: `,
      el("b", { id: "now-negative-ratio", "data-value": view ? view.negative_ratio ?? "" : "", text: view ? fmtPct(view.negative_ratio) : "–" }),
      nowPartial ? el("span", { id: "now-partial", cls: "partial-note", "data-value": held,
        text: ` (partial window: ${fmtSpan(held)} of ${ui.window} held)` }) : null),
    el("span", {}, el("span", { cls: "sw", style: "border-color: var(--score)" }), `mean score ${ui.window}: `,
      el("b", { id: "now-mean-score", "data-value": view ? view.mean_score ?? "" : "", text: view ? fmtScore(view.mean_score) : "–" })),
    el("span", {}, `items ${ui.window}: `,
      el("b", { id: "now-items", "data-value": view ? view.items : "", text: view ? fmtInt(view.items) : "–" })),
    windows.length > 1 ? el("span", {}, el("span", { cls: "sw dash", style: "border-color: var(--muted)" }), `dashed: ${windows.slice(1).join(", ")}`) : null,
    someWindows.length ? el("span", { id: "partial-legend", "data-windows": someWindows.join(",") },
      el("span", { cls: "sw partial" }),
      `dotted, faded: partial window (${someWindows.join(", ")}: the monitor holds news from ${fmtTime(buckets.history_start)} on)`) : null,
    el("span", {}, "shaded: spikes; bars: items per bucket (red negative, grey neutral, green positive)"),
  );
  const missing = ui.missingKey ? `${ui.missingKey} is not held by this aggregator; showing all news. ` : "";
  $("trend-hint").textContent = missing + (buckets
    ? `${plural(buckets.buckets.length, "bucket")} of ${buckets.bucket_seconds / 60} min (event time, UTC); lines: rolling window ending at each bucket`
    : "");
}

function renderTickers(trends, detectors) {
  const w = ui.window;
  const rows = Object.entries(trends.keys)
    .filter(([k, v]) => k.startsWith("ticker:") && v[w].items >= TICKER_MIN_ITEMS && v[w].negative > 0)
    .sort((a, b) => b[1][w].negative_ratio - a[1][w].negative_ratio || b[1][w].items - a[1][w].items)
    .slice(0, TICKER_ROWS);
  const body = document.querySelector("#tickers-table tbody");
  body.replaceChildren(...rows.map(([k, v]) => {
    const det = detectors.keys[k];
    const z = det && det.last ? det.last.z : null;
    return el("tr", { "data-key": k, onclick: () => select(k) },
      el("td", { text: keyLabel(k) }),
      el("td", { text: fmtInt(v[w].items) }),
      el("td", { cls: "neg", "data-value": v[w].negative_ratio, text: fmtPct(v[w].negative_ratio) }),
      el("td", { text: fmtScore(v[w].mean_score) }),
      el("td", { text: fmtZ(z) }));
  }));
  $("tickers-hint").textContent = `by negative share over ${w}, tickers with at least ${TICKER_MIN_ITEMS} items and a negative one` +
    (rows.length ? "; click to chart" : `: none yet`);
}

function renderTopics(topicBuckets, trends, activeKeys) {
  const w = ui.window;
  const box = $("topics");
  const cards = Object.keys(topicBuckets)
    .sort((a, b) => (trends.keys[b][w].items - trends.keys[a][w].items) || a.localeCompare(b))
    .map((k) => {
      const b = topicBuckets[k];
      const v = trends.keys[k][w];
      const rows = trendRows(b.buckets, b.bucket_seconds, [w]);
      return el("div", { cls: "topic" + (activeKeys.has(k) ? " spiking" : ""), "data-key": k, onclick: () => select(k) },
        el("div", { cls: "name", text: keyLabel(k), title: k }),
        el("div", { cls: "nums", text: `${plural(v.items, "item")} · ${fmtPct(v.negative_ratio)} neg · ${fmtScore(v.mean_score)}` }),
        sparkline(rows, w));
    });
  box.replaceChildren(...cards);
  $("topics-hint").textContent = `negative share (red) and mean score (blue) over ${w}, busiest first; click to chart`;
}

const EVIDENCE_WORDS = 5; // attribution words highlighted per evidence item, the strongest first

/**
 * Text nodes and <mark>s for `text` with the attribution words marked (whole words, any case). Built with
 * text nodes only: headlines are untrusted and never parsed as HTML.
 * @param {Array} words [{word, delta}] strongest first (delta: how much removing the word lowers P(negative))
 */
function markWords(text, words) {
  const usable = words.filter((a) => a && typeof a.word === "string" && a.word.trim());
  if (!usable.length) return [text];
  const byWord = new Map(usable.map((a) => [a.word.trim().toLowerCase(), a]));
  const alts = [...byWord.keys()].sort((a, b) => b.length - a.length).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const re = new RegExp(`(?<![\\p{L}\\p{N}_])(?:${alts.join("|")})(?![\\p{L}\\p{N}_])`, "giu");
  const out = [];
  let at = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > at) out.push(text.slice(at, m.index));
    const a = byWord.get(m[0].toLowerCase());
    const delta = typeof a.delta === "number" ? a.delta : null;
    out.push(el("mark", {
      cls: "attr", text: m[0], "data-word": a.word, "data-delta": delta ?? "",
      title: delta === null ? "drove the negative score" : `without this word P(negative) falls by ${fixed(delta, 2)}`,
    }));
    at = m.index + m[0].length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

/** A headline: links clickable, attribution words marked (`attribution` may be absent or empty). */
function linkify(text, attribution) {
  const span = el("span", { cls: "headline" });
  const words = Array.isArray(attribution)
    ? [...attribution].sort((a, b) => (b.delta ?? 0) - (a.delta ?? 0)).slice(0, EVIDENCE_WORDS)
    : [];
  const parts = text.split(/(https?:\/\/\S+)/g);
  parts.forEach((p, i) => span.append(...(i % 2 ? [el("a", { href: p, target: "_blank", rel: "noopener", text: p })] : markWords(p, words))));
  return span;
}

/** One set of spike figures (the record's start, peak or current ones): z, share against baseline, counts; where
 * the negative-volume test gave the z, its own baseline too (as the console and the alerts say it). */
function figures(f, what) {
  if (!f) return el("td", { cls: "fig", "data-fig": what, text: "–" });
  const volume = f.trigger === "volume" && f.volume_baseline != null;
  return el("td", { cls: "fig", "data-fig": what, "data-z": f.z ?? "", "data-share": f.share ?? "",
    "data-negative": f.negative, "data-items": f.items, "data-trigger": f.trigger ?? "" },
    el("b", { text: `z ${fmtZ(f.z)}` }), el("br"),
    `${fmtPct(f.share)} vs ${fmtPct(f.baseline_mean)}`, el("br"),
    `${fmtInt(f.negative)} / ${plural(f.items, "item")}`,
    volume ? el("div", { cls: "hint", text: `volume test: ${fmtInt(f.negative)} negative vs ${Number(f.volume_baseline).toFixed(1)} expected` }) : null,
    f.bucket_end ? el("div", { cls: "hint", text: fmtTime(f.bucket_end) }) : null);
}

function renderSpikes(allEpisodes) {
  const body = document.querySelector("#spikes-table tbody");
  const shown = allEpisodes.slice(0, SPIKE_ROWS);
  body.replaceChildren(...shown.map((ep) => {
    const ev = (ep.peak.evidence && ep.peak.evidence.length ? ep.peak : ep.started || ep.last).evidence || [];
    const list = el("ol", { cls: "evidence" }, ...ev.map((e) => el("li", { "data-id": e.id },
      el("span", { cls: "sc", text: fmtScore(e.sentiment_score) }), linkify(e.text, e.attribution),
      e.truncated ? el("span", { cls: "hint", text: " (too long: partly scored)" }) : null,
      e.url ? el("a", { href: e.url, target: "_blank", rel: "noopener", text: " ↗" }) : null)));
    // the record's own start / peak figures (every event carries them); the events' own numbers otherwise
    const last = ep.last;
    const start = last.start || ep.started;
    const peak = last.peak || ep.peak;
    return el("tr", { cls: ep.ended ? "ended" : "active", "data-key": ep.key, "data-state": ep.ended ? "ended" : "active",
      "data-spike-id": ep.id },
      el("td", { text: ep.ended ? "ended" : "ACTIVE" }),
      el("td", {}, el("a", { href: hashOf(ep.key, ui.window), onclick: (evt) => { evt.preventDefault(); select(ep.key); }, text: keyLabel(ep.key) }),
        ep.id ? el("div", { cls: "spike-id hint", text: ep.id, title: "spike id: the same in alerts and notifications" }) : null,
        el("div", { cls: "hint" }, el("a", { href: `/api/spikes?key=${encodeURIComponent(ep.key)}`, text: "events JSON" }))),
      // the record's start (every event carries it): a spike open longer than the API's event history
      // (monitor.spikes_history events, ~16 h of one open spike's minute updates) has lost its "started" event
      el("td", { cls: "started", text: start ? fmtTime(start.bucket_end) : "(before history)" }),
      el("td", { text: `${last.event} ${fmtTime(last.bucket_end)}` }),
      figures(start, "start"),
      figures(peak, "peak"),
      figures(last, "now"),
      el("td", {}, list));
  }));
  $("spikes-empty").hidden = shown.length > 0;
}

// ---------------------------------------------------------------- polling
/** Chart `key` (and keep the URL hash naming it, so the view can be linked and reloaded). */
function select(key) {
  ui.key = key;
  ui.missingKey = null;
  $("key-select").value = key;
  const hash = hashOf(key, ui.window);
  if (location.hash !== hash) history.replaceState(null, "", hash);
  if (ui.data) poll();
}

/** The hash was edited (or a #key link followed): chart what it names. */
function onHashChange() {
  const want = parseHash(location.hash);
  const key = want.key || "all";
  const window = want.window && ui.windows.includes(want.window) ? want.window : ui.window;
  if (key === ui.key && window === ui.window) return;
  ui.window = window;
  if (ui.window) $("window-select").value = ui.window;
  select(key);
}

function setBusy(busy) {
  ui.busy = busy;
  document.body.dataset.busy = busy ? "1" : "0";
}

function setPaused(paused) {
  ui.paused = paused;
  document.body.dataset.paused = paused ? "1" : "0";
  $("pause-toggle").textContent = paused ? "resume" : "pause";
  $("pause-toggle").setAttribute("aria-pressed", String(paused));
  if (!paused) poll();
}

async function poll() {
  if (ui.busy || ui.paused) return;
  setBusy(true);
  try {
    const [health, trends, spikes, detectors, pipeline] = await Promise.all([
      getJSON("/api/health"),
      getJSON("/api/trends"),
      getJSON(`/api/spikes?state=all&limit=${SPIKE_EVENTS}`),
      getJSON("/api/detectors"),
      getJSON("/api/pipeline", true),
    ]);
    // /api/trends lists the busiest keys (monitor.api_max_keys; all, topics and spiking keys always): a key chosen
    // outside them (a link, an ended spike) is asked for by name, and falls back to all once no longer held
    if (ui.key !== "all" && !(ui.key in trends.keys)) {
      const one = await getJSON(`/api/trends?key=${encodeURIComponent(ui.key)}`).catch(() => null);
      if (one) Object.assign(trends.keys, one.keys);
    }
    renderSelectors(trends);
    if (!(ui.key in trends.keys)) {
      ui.missingKey = ui.key; // named by the URL or a link, not held (any more): say so, chart all
      ui.key = "all";
      $("key-select").value = "all";
    }
    const topicKeys = Object.keys(trends.keys).filter((k) => k.startsWith("topic:"));
    const fetchBuckets = (k) => getJSON(`/api/keys/${encodeURIComponent(k)}/buckets`).catch(() => null);
    const [buckets, ...topicList] = await Promise.all([
      ui.key in trends.keys ? fetchBuckets(ui.key) : Promise.resolve(null),
      ...topicKeys.map(fetchBuckets),
    ]);
    const topicBuckets = {};
    topicKeys.forEach((k, i) => { if (topicList[i]) topicBuckets[k] = topicList[i]; });
    const allEpisodes = episodes(spikes.spikes);
    const active = allEpisodes.filter((e) => !e.ended);
    ui.data = { health, trends, spikes, pipeline };
    renderHeader(health, pipeline);
    renderHealth(health, pipeline, active);
    renderTrend(buckets, trends, allEpisodes);
    renderTickers(trends, detectors);
    renderTopics(topicBuckets, trends, new Set(active.map((e) => e.key)));
    renderSpikes(allEpisodes);
    $("error").hidden = true;
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  } catch (err) {
    $("error").hidden = false;
    $("error").textContent = `cannot reach the monitor API (${err.message}); retrying every ${POLL_MS / 1000} s`;
    $("status").textContent = "disconnected";
  } finally {
    setBusy(false);
  }
}

function init() {
  const want = parseHash(location.hash);
  if (want.key) ui.key = want.key;
  if (want.window) ui.window = want.window;
  document.body.dataset.paused = "0";
  $("pause-toggle").addEventListener("click", () => setPaused(!ui.paused));
  $("key-select").addEventListener("change", (e) => select(e.target.value));
  $("window-select").addEventListener("change", (e) => { ui.window = e.target.value; select(ui.key); });
  window.addEventListener("resize", () => ui.data && poll());
  window.addEventListener("hashchange", onHashChange);
  poll();
  setInterval(poll, POLL_MS);
}

init();
