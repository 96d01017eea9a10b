// The operator view: live calls from the events WebSocket, recent CDRs (GET /api/v1/cdrs) with
// filters and paging, and a chart of calls per minute and the answer ratio over the last hour,
// drawn as inline SVG from the CDRs.
"use strict";

(() => {
  const { api, follow, causeInWords, party, clock } = Switchboard;
  const $ = (id) => document.getElementById(id);
  const live = new Map();
  let page = 1;
  let reloadTimer = null;

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text ?? "";
    if (className) td.className = className;
    return td;
  }

  function time(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    const today = new Date().toDateString() === date.toDateString();
    return today ? date.toLocaleTimeString() : date.toLocaleString();
  }

  const STATES = { routing: "Routing", dialing: "Dialing", ringing: "Ringing", connected: "Connected", ending: "Ending" };

  // --- live calls ---

  function renderLive() {
    const rows = [...live.values()].sort((x, y) => (x.created_at < y.created_at ? -1 : 1)).map((call) => {
      const row = document.createElement("tr");
      row.dataset.callId = call.call_id;
      const since = call.connected_at || call.created_at;
      const legs = (call.legs || []).map((l) => `${l.leg.toUpperCase()} ${l.state}${l.held ? " (held)" : ""}`).join(", ");
      const state = cell("");
      const badge = document.createElement("span");
      badge.className = "badge" + (call.state === "connected" ? " good" : "");
      badge.textContent = STATES[call.state] || call.state;
      badge.title = legs;
      state.append(badge);
      const action = cell("");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "quiet";
      button.textContent = "Hang up";
      button.setAttribute("aria-label", `Hang up the call from ${party(call.from)} to ${party(call.to)}`);
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          await api("DELETE", `/calls/${encodeURIComponent(call.call_id)}`);
        } catch (error) {
          if (error.status !== 409) button.disabled = false;
        }
      });
      action.append(button);
      const running = cell(clock((Date.now() - Date.parse(since)) / 1000), "num");
      running.dataset.since = since;
      row.append(cell(time(call.created_at)), cell(party(call.from)), cell(party(call.to)), state, running, action);
      return row;
    });
    $("live").tBodies[0].replaceChildren(...rows);
    $("live-count").textContent = String(live.size);
    $("live-empty").hidden = live.size > 0;
  }

  function tickLive() {
    for (const td of document.querySelectorAll("#live td[data-since]")) {
      td.textContent = clock((Date.now() - Date.parse(td.dataset.since)) / 1000);
    }
  }

  function onCall(call) {
    if (call.state === "ended") {
      live.delete(call.call_id);
      // The accounting worker writes the CDR moments after call.ended.
      clearTimeout(reloadTimer);
      reloadTimer = setTimeout(refresh, 1500);
    } else {
      live.set(call.call_id, call);
    }
    renderLive();
  }

  // --- CDRs ---

  function filters() {
    const form = $("cdr-filters");
    const query = new URLSearchParams();
    for (const name of ["from", "to", "status"]) if (form[name].value.trim()) query.set(name, form[name].value.trim());
    if (form.period.value) query.set("since", new Date(Date.now() - Number(form.period.value) * 1000).toISOString());
    return query;
  }

  function result(cdr) {
    if (cdr.end_cause) return causeInWords(cdr.end_cause);
    if (cdr.outcome === "routed") return `Redirected (${cdr.sip_status})`;
    if (cdr.outcome === "rejected") return `Rejected ${cdr.sip_status}${cdr.reason ? " " + cdr.reason : ""}`;
    return "In progress";
  }

  const KINDS = { originated: "Click2Call", bridged: "Bridged", routed: "Redirected", rejected: "Rejected" };
  const seconds = (ms) => (ms == null ? "" : clock(ms / 1000));

  async function loadCDRs() {
    const query = filters();
    query.set("page", String(page));
    query.set("per_page", "20");
    $("cdr-error").textContent = "";
    try {
      const data = await api("GET", `/cdrs?${query}`);
      const rows = data.cdrs.map((cdr) => {
        const row = document.createElement("tr");
        row.dataset.callId = cdr.call_id;
        const good = cdr.answered_at || cdr.outcome === "routed";
        const outcome = cell("");
        const badge = document.createElement("span");
        badge.className = "badge " + (good ? "good" : cdr.end_cause || cdr.outcome === "rejected" ? "bad" : "");
        badge.textContent = result(cdr);
        outcome.append(badge);
        row.append(cell(time(cdr.decided_at)), cell(party(cdr.caller)), cell(party(cdr.callee)),
                   cell(KINDS[cdr.outcome] || cdr.outcome), outcome, cell(seconds(cdr.setup_ms), "num"),
                   cell(seconds(cdr.talk_ms), "num"));
        return row;
      });
      $("cdrs").tBodies[0].replaceChildren(...rows);
      const pages = Math.max(1, Math.ceil(data.total / data.per_page));
      $("cdr-caption").textContent = `${data.total} call${data.total === 1 ? "" : "s"}, newest first`;
      $("page-info").textContent = `Page ${page} of ${pages}`;
      $("prev").disabled = page <= 1;
      $("next").disabled = page >= pages;
    } catch (error) {
      $("cdr-error").textContent = `CDRs unavailable: ${error.message}`;
    }
  }

  // --- chart: the last hour, one bar per minute, the answer ratio as a line ---

  async function lastHour() {
    const since = new Date(Date.now() - 3600 * 1000).toISOString();
    const all = [];
    for (let p = 1; p <= 10; p++) {
      const data = await api("GET", `/cdrs?since=${encodeURIComponent(since)}&per_page=500&page=${p}`);
      all.push(...data.cdrs);
      if (all.length >= data.total) break;
    }
    return all;
  }

  function svg(name, attributes, text) {
    const element = document.createElementNS("http://www.w3.org/2000/svg", name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
    if (text !== undefined) element.textContent = text;
    return element;
  }

  async function drawChart() {
    let cdrs;
    try {
      cdrs = await lastHour();
    } catch (error) {
      $("chart-summary").textContent = `No data: ${error.message}`;
      return;
    }
    const now = Date.now();
    const start = now - 60 * 60000;
    const minutes = Array.from({ length: 60 }, () => ({ calls: 0, answerable: 0, answered: 0 }));
    for (const cdr of cdrs) {
      const index = Math.floor((Date.parse(cdr.decided_at) - start) / 60000);
      if (index < 0 || index >= 60) continue;
      const minute = minutes[index];
      minute.calls++;
      // Only bridged and click-to-call calls can be answered; redirects and rejects are not counted.
      if (cdr.outcome === "bridged" || cdr.outcome === "originated") {
        minute.answerable++;
        if (cdr.answered_at) minute.answered++;
      }
    }
    const [W, H, left, right, top, bottom] = [600, 180, 34, 40, 10, 24];
    const plotW = W - left - right;
    const plotH = H - top - bottom;
    const peak = Math.max(1, ...minutes.map((m) => m.calls));
    const chart = $("chart");
    chart.replaceChildren();
    chart.append(svg("line", { class: "axis", x1: left, x2: W - right, y1: top + plotH, y2: top + plotH }));
    chart.append(svg("line", { class: "axis", x1: left, x2: W - right, y1: top, y2: top }));
    chart.append(svg("text", { x: left - 6, y: top + 4, "text-anchor": "end" }, String(peak)));
    chart.append(svg("text", { x: left - 6, y: top + plotH + 4, "text-anchor": "end" }, "0"));
    chart.append(svg("text", { x: W - right + 6, y: top + 4 }, "100%"));
    chart.append(svg("text", { x: W - right + 6, y: top + plotH + 4 }, "0%"));
    chart.append(svg("text", { x: left, y: H - 6 }, "−60 min"));
    chart.append(svg("text", { x: left + plotW / 2, y: H - 6, "text-anchor": "middle" }, "−30 min"));
    chart.append(svg("text", { x: W - right, y: H - 6, "text-anchor": "end" }, "now"));
    const slot = plotW / 60;
    const points = [];
    const dots = [];
    minutes.forEach((minute, i) => {
      if (minute.calls) {
        const h = (minute.calls / peak) * plotH;
        const bar = svg("rect", { class: "bar-rect", x: left + i * slot + 1, y: top + plotH - h, width: Math.max(1, slot - 2), height: h, rx: 1 });
        bar.append(svg("title", {}, `${minute.calls} call${minute.calls === 1 ? "" : "s"}`));
        chart.append(bar);
      }
      if (minute.answerable) {
        const [x, y] = [left + (i + 0.5) * slot, top + plotH - (minute.answered / minute.answerable) * plotH];
        points.push(`${x},${y}`);
        const dot = svg("circle", { class: "ratio-dot", cx: x, cy: y, r: 3.5 });
        dot.append(svg("title", {}, `${minute.answered} of ${minute.answerable} answered`));
        dots.push(dot);
      }
    });
    if (points.length > 1) chart.append(svg("polyline", { class: "ratio", points: points.join(" ") }));
    chart.append(...dots);

    const total = cdrs.length;
    const answerable = minutes.reduce((n, m) => n + m.answerable, 0);
    const answered = minutes.reduce((n, m) => n + m.answered, 0);
    const busiest = minutes.reduce((best, m, i) => (m.calls > best.calls ? { calls: m.calls, i } : best), { calls: 0, i: 0 });
    const at = new Date(start + busiest.i * 60000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    $("chart-summary").textContent = total === 0
      ? "No calls in the last hour."
      : `${total} call${total === 1 ? "" : "s"} in the last hour; ` +
        (answerable ? `${answered} of ${answerable} bridged or Click2Call calls answered (${Math.round((100 * answered) / answerable)}%)` : "none to answer") +
        `; busiest minute ${at} with ${busiest.calls}.`;
  }

  function refresh() {
    loadCDRs();
    drawChart();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("cdr-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      page = 1;
      loadCDRs();
    });
    $("prev").addEventListener("click", () => { page = Math.max(1, page - 1); loadCDRs(); });
    $("next").addEventListener("click", () => { page += 1; loadCDRs(); });
    Switchboard.start(() => {
      follow({
        onSnapshot: (calls) => { live.clear(); calls.forEach((c) => live.set(c.call_id, c)); renderLive(); },
        onCall,
        onConnection: (up) => ($("connection").hidden = up),
      });
      refresh();
      setInterval(tickLive, 1000);
      setInterval(refresh, 30000);
    });
  });
})();
