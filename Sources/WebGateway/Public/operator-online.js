// The operator view's "Online" list: who is registered at Kamailio, from GET /api/v1/registrations
// (the gateway follows the bridges' registration.* events). Polled every 5 s, and each row's
// "expires in" counts down between polls. Starts when common.js shows the section after login.
"use strict";

(() => {
  const { api, clock } = Switchboard;
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 5000;
  let rows = []; // [{registration, deadline}]
  let timer = null;

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function render() {
    const now = Date.now();
    const live = rows.filter((row) => row.deadline > now);
    const body = $("online").querySelector("tbody");
    body.replaceChildren(...live.map(({ registration: r, deadline }) => {
      const tr = document.createElement("tr");
      tr.dataset.user = r.user;
      tr.append(cell(r.user), cell(r.contact), cell(r.transport.toUpperCase()), cell(r.user_agent || "–"),
                cell(clock((deadline - now) / 1000), "num"));
      tr.title = `${r.aor}${r.received ? ` from ${r.received}` : ""}`;
      return tr;
    }));
    $("online-count").textContent = String(new Set(live.map((row) => row.registration.aor)).size);
    $("online-empty").hidden = live.length > 0;
  }

  async function load() {
    try {
      const { registrations } = await api("GET", "/registrations");
      const fetched = Date.now();
      rows = registrations.map((registration) => ({ registration, deadline: fetched + registration.expires * 1000 }));
      $("online-error").textContent = "";
    } catch (error) {
      $("online-error").textContent = `Cannot list who is online: ${error.message}`;
    }
    render();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const section = $("online-section");
    new MutationObserver(() => {
      if (section.hidden || timer) return;
      load();
      timer = setInterval(load, POLL_MS);
      setInterval(render, 1000);
    }).observe(section, { attributes: true, attributeFilter: ["hidden"] });
  });
})();
