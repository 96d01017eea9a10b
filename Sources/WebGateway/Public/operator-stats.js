// The operator view's traffic and charges: GET /api/v1/stats drawn as inline SVG (calls per
// interval, answered over failed, with the answer ratio as a line), headline figures (calls, ASR,
// ACD, PDD, charges) and one bar per route or account; a link to the period's CSV
// (GET /api/v1/cdrs.csv). Starts when common.js shows the section after login.
"use strict";

(() => {
  const { api } = Switchboard;
  const $ = (id) => document.getElementById(id);
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = { answered: "var(--good)", failed: "var(--bad)", other: "#9aa4b2", ratio: "var(--accent)" };
  let timer = null;

  function svg(name, attributes, text) {
    const element = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
    if (text !== undefined) element.textContent = text;
    return element;
  }

  const percent = (ratio) => (ratio == null ? "–" : `${Math.round(ratio * 100)}%`);
  const seconds = (value) => (value == null ? "–" : value < 10 ? `${value.toFixed(1)} s` : value < 60 ? `${value.toFixed(0)} s` : `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`);
  const millis = (value) => (value == null ? "–" : value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(1)} s`);

  /** Trims a six-decimal amount to cents unless the rest matters: "0.024000" → "0.024". */
  function money(amount, currency) {
    const [whole, fraction = ""] = amount.split(".");
    const kept = fraction.replace(/0+$/, "").padEnd(2, "0");
    return `${whole}.${kept} ${currency || ""}`.trim();
  }

  function period() {
    const form = $("stats-filters");
    const span = Number(form.period.value);
    const until = new Date();
    const since = new Date(until.getTime() - span * 1000);
    // About 24 bars whatever the period, in whole minutes.
    const interval = Math.max(60, Math.round(span / 24 / 60) * 60);
    return { since: since.toISOString(), until: until.toISOString(), interval, by: form.by.value };
  }

  function label(iso, span) {
    const date = new Date(iso);
    return span > 86400
      ? date.toLocaleDateString([], { month: "short", day: "numeric" })
      : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function drawIntervals(stats, span) {
    const chart = $("stats-chart");
    chart.replaceChildren();
    const [W, H, left, right, top, bottom] = [720, 220, 36, 44, 12, 26];
    const plotW = W - left - right;
    const plotH = H - top - bottom;
    const peak = Math.max(1, ...stats.intervals.map((i) => i.total.attempts));
    chart.append(svg("line", { x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, stroke: "var(--line)" }));
    chart.append(svg("line", { x1: left, x2: W - right, y1: top, y2: top, stroke: "var(--line)", "stroke-dasharray": "3 3" }));
    const text = (x, y, value, anchor = "start") =>
      svg("text", { x, y, "text-anchor": anchor, fill: "var(--muted)", "font-size": 11 }, value);
    chart.append(text(left - 6, top + 4, String(peak), "end"), text(left - 6, top + plotH + 4, "0", "end"));
    chart.append(text(W - right + 6, top + 4, "100%"), text(W - right + 6, top + plotH + 4, "0%"));
    const count = stats.intervals.length;
    const slot = plotW / Math.max(1, count);
    const step = Math.max(1, Math.ceil(count / 6));
    const points = [];
    stats.intervals.forEach((interval, i) => {
      const x = left + i * slot;
      const { answered, failed, attempts } = interval.total;
      let y = top + plotH;
      for (const [kind, n] of [["answered", answered], ["failed", failed], ["other", attempts - answered - failed]]) {
        if (!n) continue;
        const h = (n / peak) * plotH;
        y -= h;
        const bar = svg("rect", { x: x + 1, y, width: Math.max(1, slot - 2), height: h, fill: COLORS[kind], rx: 1 });
        bar.append(svg("title", {}, `${label(interval.start, span)}: ${n} ${kind === "other" ? "redirected or in progress" : kind}`));
        chart.append(bar);
      }
      if (interval.total.asr != null) points.push(`${x + slot / 2},${top + plotH - interval.total.asr * plotH}`);
      if (i % step === 0) chart.append(text(x + slot / 2, H - 8, label(interval.start, span), "middle"));
    });
    if (points.length > 1) {
      chart.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: COLORS.ratio, "stroke-width": 2 }));
    }
    for (const point of points) {
      const [cx, cy] = point.split(",");
      chart.append(svg("circle", { cx, cy, r: 3, fill: COLORS.ratio, stroke: "#fff", "stroke-width": 1.5 }));
    }
  }

  /** One horizontal bar per route or account: its calls, split answered / failed, with ASR, ACD and charges beside. */
  function drawKeys(stats) {
    const chart = $("stats-keys");
    chart.replaceChildren();
    const keys = [...stats.keys].sort((x, y) => y.attempts - x.attempts).slice(0, 12);
    const row = 26;
    const [W, nameW, barW] = [720, 120, 250];
    chart.setAttribute("viewBox", `0 0 ${W} ${Math.max(1, keys.length) * row + 20}`);
    const peak = Math.max(1, ...keys.map((k) => k.attempts));
    const text = (x, y, value, extra = {}) => svg("text", { x, y, fill: "var(--ink)", "font-size": 12, ...extra }, value);
    chart.append(text(nameW + barW + 40, 12, "ASR", { fill: "var(--muted)" }), text(nameW + barW + 96, 12, "ACD", { fill: "var(--muted)" }),
      text(nameW + barW + 166, 12, "PDD", { fill: "var(--muted)" }), text(W - 4, 12, "Charges", { fill: "var(--muted)", "text-anchor": "end" }));
    keys.forEach((key, i) => {
      const y = 20 + i * row;
      chart.append(text(0, y + 13, key.key.length > 18 ? key.key.slice(0, 17) + "…" : key.key));
      let x = nameW;
      for (const [kind, n] of [["answered", key.answered], ["failed", key.failed], ["other", key.attempts - key.answered - key.failed]]) {
        if (!n) continue;
        const w = (n / peak) * barW;
        const bar = svg("rect", { x, y: y + 2, width: w, height: row - 10, fill: COLORS[kind], rx: 2 });
        bar.append(svg("title", {}, `${key.key}: ${n} ${kind === "other" ? "redirected or in progress" : kind}`));
        chart.append(bar);
        x += w;
      }
      chart.append(text(x + 4, y + 13, String(key.attempts), { fill: "var(--muted)", "font-size": 11 }));
      chart.append(text(nameW + barW + 40, y + 13, percent(key.asr)), text(nameW + barW + 96, y + 13, seconds(key.acd_s)),
        text(nameW + barW + 166, y + 13, millis(key.pdd_ms)),
        text(W - 4, y + 13, key.rated ? money(key.charge, stats.currency) : "unrated", { "text-anchor": "end" }));
    });
  }

  async function load() {
    const query = period();
    const search = new URLSearchParams(query).toString();
    $("stats-csv").href = `/api/v1/cdrs.csv?${new URLSearchParams({ since: query.since, until: query.until })}`;
    let stats;
    try {
      stats = await api("GET", `/stats?${search}`);
      $("stats-error").textContent = "";
    } catch (error) {
      $("stats-error").textContent = `No statistics: ${error.message}`;
      return;
    }
    const span = Number($("stats-filters").period.value);
    const t = stats.total;
    $("stats-calls").textContent = String(t.attempts);
    $("stats-asr").textContent = percent(t.asr);
    $("stats-acd").textContent = seconds(t.acd_s);
    $("stats-pdd").textContent = millis(t.pdd_ms);
    $("stats-charge").textContent = money(t.charge, stats.currency);
    drawIntervals(stats, span);
    drawKeys(stats);
    const busiest = stats.intervals.reduce((best, i) => (i.total.attempts > best.total.attempts ? i : best), stats.intervals[0]);
    $("stats-summary").textContent = t.attempts === 0
      ? "No calls in this period."
      : `${t.attempts} call${t.attempts === 1 ? "" : "s"}: ${t.answered} answered, ${t.failed} failed` +
        (t.redirected ? `, ${t.redirected} redirected` : "") + `; busiest ${label(busiest.start, span)} with ${busiest.total.attempts}.`;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = $("stats-section");
    $("stats-filters").addEventListener("change", load);
    // common.js unhides the section once logged in: that is when there is something to load.
    new MutationObserver(() => {
      if (section.hidden || timer) return;
      load();
      timer = setInterval(load, 60000);
    }).observe(section, { attributes: true, attributeFilter: ["hidden"] });
  });
})();
