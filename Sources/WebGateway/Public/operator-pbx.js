// The operator view's PBX rules (admins only): extensions and hunt groups in words, and forms that create,
// edit and delete them over /api/v1/pbx (the `pbx` worker's database, which it reloads). The section stays
// hidden for anyone the API refuses (403) and when the gateway has no PBX database (503).
"use strict";

(() => {
  const { api } = Switchboard;
  const $ = (id) => document.getElementById(id);
  const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  const DAY_NAMES = { mon: "Mon", tue: "Tue", wed: "Wed", thu: "Thu", fri: "Fri", sat: "Sat", sun: "Sun" };
  const FORWARDS = ["forward_always", "forward_busy", "forward_no_answer", "forward_unreachable"];
  const STRATEGIES = { sequential: "One after the other", simultaneous: "All at once", round_robin: "Round robin" };
  const DEFAULT_RING_SECONDS = 20; // PBXExtension.defaultNoAnswerSeconds and PBXGroup's default
  let rules = { extensions: [], groups: [] };

  function cell(...lines) {
    const td = document.createElement("td");
    lines.forEach((line, index) => {
      if (index) td.append(document.createElement("br"));
      td.append(line);
    });
    return td;
  }

  /** ["mon","tue","wed","thu","fri"] → "Mon–Fri"; ["sat","sun"] → "Sat, Sun". */
  function dayList(days) {
    const open = DAYS.map((day) => days.includes(day));
    if (open.every(Boolean)) return "Every day";
    const runs = [];
    for (let start = 0; start < 7; start++) {
      if (!open[start]) continue;
      let end = start;
      while (end + 1 < 7 && open[end + 1]) end++;
      const names = DAYS.slice(start, end + 1).map((day) => DAY_NAMES[day]);
      runs.push(names.length > 2 ? `${names[0]}–${names[names.length - 1]}` : names.join(", "));
      start = end;
    }
    return runs.join(", ");
  }

  function scheduleInWords(schedule) {
    if (!schedule) return ["Always open"];
    const overnight = schedule.closes < schedule.opens ? " (next day)" : "";
    const closed = schedule.closed || {};
    const answer = closed.forward ? `Closed: forward to ${closed.forward}`
      : `Closed: answer ${closed.status ?? 480}${closed.reason ? ` ${closed.reason}` : ""}`;
    return [`${dayList(schedule.days)} ${schedule.opens}–${schedule.closes}${overnight}`, schedule.time_zone, answer];
  }

  function extensionRules(rule) {
    const lines = [];
    if (rule.dnd) lines.push("Do not disturb (calls count as busy)");
    if (rule.forward_always) lines.push(`Always: forward to ${rule.forward_always}`);
    if (rule.forward_busy) lines.push(`Busy: forward to ${rule.forward_busy}`);
    if (rule.forward_no_answer) {
      lines.push(`No answer after ${rule.no_answer_seconds ?? DEFAULT_RING_SECONDS} s: forward to ${rule.forward_no_answer}`);
    }
    if (rule.forward_unreachable) lines.push(`Unreachable: forward to ${rule.forward_unreachable}`);
    return lines.length ? lines : ["Rings, no forwards"];
  }

  function actions(kind, name, edit, remove) {
    const td = cell();
    for (const [label, run] of [["Edit", edit], ["Delete", remove]]) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "quiet";
      button.textContent = label;
      button.setAttribute("aria-label", `${label} ${kind} ${name}`);
      button.addEventListener("click", () => run(button));
      td.append(button, " ");
    }
    return td;
  }

  async function remove(kind, path, name, button) {
    if (!confirm(`Delete ${kind} ${name}?`)) return;
    button.disabled = true;
    $("pbx-error").textContent = "";
    try {
      await api("DELETE", `/pbx/${path}/${encodeURIComponent(name)}`);
      await load();
    } catch (error) {
      $("pbx-error").textContent = `Cannot delete ${kind} ${name}: ${error.message}`;
      button.disabled = false;
    }
  }

  function extensionRow(rule) {
    const tr = document.createElement("tr");
    tr.dataset.user = rule.user;
    tr.append(cell(rule.user), cell(rule.contact || "Its own phone"), cell(...extensionRules(rule)),
      cell(...scheduleInWords(rule.schedule)),
      actions("extension", rule.user, () => extensionForm.edit(rule), (button) => remove("extension", "extensions", rule.user, button)));
    return tr;
  }

  function groupRow(group) {
    const tr = document.createElement("tr");
    tr.dataset.name = group.name;
    const ring = group.strategy === "simultaneous" ? `${group.ring_seconds} s` : `${group.ring_seconds} s each`;
    tr.append(cell(group.name), cell(STRATEGIES[group.strategy] || group.strategy),
      cell(group.members.join(group.strategy === "simultaneous" ? " + " : " → ")), cell(ring),
      cell(group.overflow ? `Forward to ${group.overflow}` : "The caller gets the failure"),
      actions("group", group.name, () => groupForm.edit(group), (button) => remove("group", "groups", group.name, button)));
    return tr;
  }

  async function load() {
    rules = await api("GET", "/pbx");
    $("pbx-extensions").tBodies[0].replaceChildren(...rules.extensions.map(extensionRow));
    $("pbx-groups").tBodies[0].replaceChildren(...rules.groups.map(groupRow));
    $("pbx-extensions-count").textContent = String(rules.extensions.length);
    $("pbx-groups-count").textContent = String(rules.groups.length);
    $("pbx-extensions-empty").hidden = rules.extensions.length > 0;
    $("pbx-groups-empty").hidden = rules.groups.length > 0;
  }

  /**
   * One rule form: `fill(rule)` puts a rule (or null: a new one) in the fields, `body(form)` reads them back.
   * Editing keeps the name (a PUT to another name would make a second rule and leave this one).
   */
  function ruleForm({ id, kind, path, key, titles, fill, body }) {
    const form = $(id);
    const error = $(`${id.replace(/-form$/, "")}-error`);
    const status = form.querySelector("[role=status]");
    const cancel = form.querySelector("[data-cancel]");
    let editing = null;

    function reset(rule) {
      form.reset();
      editing = rule ? rule[key] : null;
      form[key].readOnly = Boolean(rule);
      cancel.hidden = !rule;
      error.textContent = "";
      form.querySelector("h3").textContent = rule ? `${titles.edit} ${rule[key]}` : titles.create;
      fill(form, rule);
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      status.textContent = "";
      const name = form[key].value.trim();
      // PUT replaces: a new rule must not overwrite one by accident (an extension and a group share names too).
      const taken = rules.extensions.some((rule) => rule.user === name) ? "an extension"
        : rules.groups.some((group) => group.name === name) ? "a hunt group" : null;
      if (!editing && taken) {
        error.textContent = `${name} is ${taken} already; its Edit button changes it.`;
        form[key].focus();
        return;
      }
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        await api("PUT", `/pbx/${path}/${encodeURIComponent(name)}`, body(form));
        reset(null);
        status.textContent = `Saved ${kind} ${name}.`;
        await load();
      } catch (failure) {
        error.textContent = failure.message;
        // A 422 names the field first ("forward_busy \"x\" is not ..."): go there.
        const field = form.elements[(failure.problem.detail || "").split(" ")[0]];
        if (field instanceof HTMLElement && !field.readOnly) field.focus();
      } finally {
        button.disabled = false;
      }
    });
    cancel.addEventListener("click", () => reset(null));
    reset(null);
    return {
      edit(rule) {
        reset(rule);
        status.textContent = "";
        form.scrollIntoView({ block: "nearest" });
        form.elements[1].focus();
      },
    };
  }

  const text = (form, name) => form[name].value.trim();

  const extensionForm = ruleForm({
    id: "pbx-extension-form", kind: "extension", path: "extensions", key: "user",
    titles: { create: "New extension", edit: "Edit extension" },
    fill(form, rule) {
      const schedule = rule && rule.schedule;
      if (rule) {
        form.user.value = rule.user;
        form.contact.value = rule.contact || "";
        for (const name of FORWARDS) form[name].value = rule[name] || "";
        form.no_answer_seconds.value = rule.no_answer_seconds ?? "";
        form.dnd.checked = rule.dnd;
      }
      form.scheduled.checked = Boolean(schedule);
      $("pbx-schedule").disabled = !schedule;
      form.time_zone.value = schedule ? schedule.time_zone : Intl.DateTimeFormat().resolvedOptions().timeZone;
      form.opens.value = schedule ? schedule.opens : "09:00";
      form.closes.value = schedule ? schedule.closes : "17:00";
      const days = schedule ? schedule.days : DAYS.slice(0, 5);
      form.querySelectorAll("input[name=days]").forEach((box) => (box.checked = days.includes(box.value)));
      const closed = (schedule && schedule.closed) || {};
      form.closed_forward.value = closed.forward || "";
      form.closed_status.value = closed.forward ? "" : closed.status ?? "";
      form.closed_reason.value = closed.reason || "";
    },
    body(form) {
      const rule = { dnd: form.dnd.checked };
      for (const name of ["contact", ...FORWARDS]) if (text(form, name)) rule[name] = text(form, name);
      if (text(form, "no_answer_seconds")) rule.no_answer_seconds = Number(text(form, "no_answer_seconds"));
      if (form.scheduled.checked) {
        const closed = {};
        if (text(form, "closed_forward")) closed.forward = text(form, "closed_forward");
        if (text(form, "closed_status")) closed.status = Number(text(form, "closed_status"));
        if (text(form, "closed_reason")) closed.reason = text(form, "closed_reason");
        rule.schedule = {
          time_zone: text(form, "time_zone"), opens: form.opens.value, closes: form.closes.value, closed,
          days: [...form.querySelectorAll("input[name=days]:checked")].map((box) => box.value),
        };
      }
      return rule;
    },
  });

  const groupForm = ruleForm({
    id: "pbx-group-form", kind: "group", path: "groups", key: "name",
    titles: { create: "New hunt group", edit: "Edit hunt group" },
    fill(form, group) {
      if (!group) return;
      form.name.value = group.name;
      form.strategy.value = group.strategy;
      form.members.value = group.members.join(", ");
      form.ring_seconds.value = group.ring_seconds;
      form.overflow.value = group.overflow || "";
    },
    body(form) {
      const group = { strategy: form.strategy.value, members: form.members.value.split(/[\s,]+/).filter(Boolean) };
      if (text(form, "ring_seconds")) group.ring_seconds = Number(text(form, "ring_seconds"));
      if (text(form, "overflow")) group.overflow = text(form, "overflow");
      return group;
    },
  });

  $("pbx-extension-form").scheduled.addEventListener("change", (event) => {
    $("pbx-schedule").disabled = !event.target.checked;
  });
  if (Intl.supportedValuesOf) {
    $("pbx-time-zones").replaceChildren(...Intl.supportedValuesOf("timeZone").map((zone) => new Option(zone)));
  }

  // Once logged in (operator.js starts the login), try the rules.
  async function show() {
    try {
      await load();
      $("pbx-section").hidden = false;
    } catch (error) {
      // 403: not an admin; 503: no PBX database. Anything else is worth saying.
      const hide = [401, 403, 503].includes(error.status);
      $("pbx-section").hidden = hide;
      if (!hide) $("pbx-error").textContent = `Cannot list the PBX rules: ${error.message}`;
    }
  }
  const refresh = Switchboard.onSession(show);
  // Rules also change through the CLI: look again when the operator comes back to the page.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });
})();
