// The Click2Call page: place a call (POST /api/v1/calls), follow it live over the events WebSocket,
// hang it up (DELETE /api/v1/calls/{id}). The gateway sends the whole call on every change; the
// page turns its legs into the steps a person understands.
"use strict";

(() => {
  const { api, follow, causeInWords, party, clock } = Switchboard;
  const $ = (id) => document.getElementById(id);

  /** The steps, in the order they happen. */
  const STEPS = {
    calling_you: "Calling you",
    you_answered: "You answered",
    calling_them: "Calling them",
    ringing: "Ringing",
    connected: "Connected",
    ended: "Ended",
  };

  const histories = new Map(); // call id → [{state, at}] as seen by this page
  const calls = new Map(); // call id → the last LiveCall received
  let current = null; // {id, hangupWanted, done} — the call this page shows
  let timer = null; // {started, handle}

  function leg(call, name) {
    return (call.legs || []).find((l) => l.leg === name);
  }

  /** Which step a call is at, or null when this change moves no step (a leg failing before the end). */
  function stepOf(call) {
    if (call.state === "ended") return "ended";
    if (call.state === "connected") return "connected";
    const a = leg(call, "a");
    const b = leg(call, "b");
    if (b) {
      if (b.state === "calling") return "calling_them";
      if (b.state === "ringing" || b.state === "answered") return "ringing";
      return null;
    }
    if (a && a.state === "answered") return "you_answered";
    if (a && a.state === "ended") return null;
    return "calling_you";
  }

  /** "Busy (the number you called)": whose side ended a call that never connected. */
  function endedInWords(call) {
    const words = causeInWords(call.end_cause);
    if (call.connected_at || ["hangup_command", "normal_clearing"].includes(call.end_cause)) return words;
    const a = leg(call, "a");
    if (!a || a.state !== "answered") {
      const answeredEver = (histories.get(call.call_id) || []).some((s) => s.state === "you_answered");
      if (!answeredEver) return `${words} (your phone)`;
    }
    return `${words} (${party(call.to) || "the number you called"})`;
  }

  /** The sentence the status line (and a screen reader) says for a call. */
  function sentence(call) {
    const step = (histories.get(call.call_id) || []).at(-1)?.state || "calling_you";
    const them = party(call.to) || "the other number";
    switch (step) {
      case "calling_you":
        return leg(call, "a")?.state === "ringing" ? "Calling you: your phone is ringing. Answer it." : "Calling you…";
      case "you_answered":
        return `You answered. Now calling ${them}…`;
      case "calling_them":
        return `Calling ${them}…`;
      case "ringing":
        return `${them} is ringing…`;
      case "connected":
        return `Connected with ${them}.`;
      case "ended":
        return `Call ended: ${endedInWords(call)}.`;
    }
    return "";
  }

  /** Remembers a call's change and moves its steps on. */
  function record(call) {
    calls.set(call.call_id, call);
    const step = stepOf(call);
    const history = histories.get(call.call_id) || [];
    if (step && history.at(-1)?.state !== step && history.at(-1)?.state !== "ended") {
      history.push({ state: step, at: new Date() });
    }
    histories.set(call.call_id, history);
    if (histories.size > 200) histories.delete(histories.keys().next().value);
    if (calls.size > 200) calls.delete(calls.keys().next().value);
    if (current && current.id === call.call_id) render();
  }

  function setStatus(text, state) {
    const status = $("status");
    if (status.textContent !== text) status.textContent = text;
    status.dataset.state = state;
  }

  function render() {
    const call = calls.get(current.id) || { call_id: current.id, state: "dialing", legs: [] };
    const history = histories.get(current.id) || [];
    $("progress-section").dataset.callId = current.id;
    const list = $("steps");
    list.replaceChildren(
      ...history.map((step, index) => {
        const item = document.createElement("li");
        item.dataset.state = step.state;
        item.className = index === history.length - 1 ? "current" : "done";
        const label = document.createElement("span");
        label.className = "label";
        label.textContent = step.state === "ended" ? `Ended: ${endedInWords(call)}` : STEPS[step.state];
        if (step.state === "ended") item.dataset.cause = call.end_cause || "";
        const time = document.createElement("time");
        time.dateTime = step.at.toISOString();
        time.textContent = step.at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
        item.append(label, time);
        return item;
      })
    );
    const step = history.at(-1)?.state || "calling_you";
    setStatus(sentence(call), step);
    if (step === "connected" && !timer) startTimer();
    if (step === "ended") finish();
  }

  function startTimer() {
    const element = $("timer");
    timer = { started: Date.now() };
    element.hidden = false;
    const tick = () => (element.textContent = clock((Date.now() - timer.started) / 1000));
    tick();
    timer.handle = setInterval(tick, 1000);
  }

  function stopTimer() {
    if (timer) clearInterval(timer.handle);
    timer = null;
  }

  /** The call is over: Call again, no Hang up, the talk time stays on screen. */
  function finish() {
    if (current.done) return;
    current.done = true;
    stopTimer();
    const hangup = $("hangup");
    const hadFocus = document.activeElement === hangup || document.activeElement === document.body;
    hangup.disabled = true;
    $("call").disabled = false;
    if (hadFocus) $("call").focus();
  }

  function newIdempotencyKey() {
    if (window.crypto?.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  async function place(event) {
    event.preventDefault();
    const form = event.target;
    $("call-error").textContent = "";
    stopTimer();
    $("timer").hidden = true;
    $("steps").replaceChildren();
    current = { id: null, hangupWanted: false, done: false };
    setStatus("Placing the call…", "placing");
    $("call").disabled = true;
    $("hangup").disabled = false;
    $("hangup").focus();
    try {
      const placed = await api("POST", "/calls", { from: form.from.value.trim(), to: form.to.value.trim() },
                               { "Idempotency-Key": newIdempotencyKey() });
      current.id = placed.call_id;
      if (!histories.get(current.id)?.length) histories.set(current.id, [{ state: "calling_you", at: new Date() }]);
      render();
      if (current.hangupWanted) await hangup();
    } catch (error) {
      current.done = true;
      $("call-error").textContent = error.problem?.field
        ? `${error.problem.title}: ${error.message}`
        : `The call was not placed: ${error.message}`;
      setStatus("No call placed.", "idle");
      $("call").disabled = false;
      $("hangup").disabled = true;
      const field = error.problem?.field || error.problem?.invalid_params?.[0]?.name;
      if (field === "from" || field === "to") form[field].focus();
      else $("call").focus();
    }
  }

  async function hangup() {
    if (!current || current.done) return;
    if (!current.id) {
      current.hangupWanted = true; // the originate is still on its way: hang up as soon as it has an id
      setStatus("Hanging up…", "ending");
      return;
    }
    $("hangup").disabled = true;
    setStatus("Hanging up…", "ending");
    try {
      await api("DELETE", `/calls/${encodeURIComponent(current.id)}`);
    } catch (error) {
      if (error.status === 409 || error.status === 404) return; // it ended on its own meanwhile
      $("call-error").textContent = `Could not hang up: ${error.message}`;
      $("hangup").disabled = false;
    }
  }

  /** After a (re)connect: calls this page was following may have changed or ended meanwhile. */
  async function snapshot(live, session) {
    live.forEach(record);
    if (current && current.id && !current.done && !live.some((c) => c.call_id === current.id)) {
      try {
        record(await api("GET", `/calls/${encodeURIComponent(current.id)}`));
      } catch {
        /* gone from memory too: the CDRs have it */
      }
    }
    if (!current || current.done) {
      // A reload in the middle of a call: pick the user's own live call up again.
      const mine = live.filter((c) => c.owner === `user:${session.user}`).at(-1);
      if (mine) {
        current = { id: mine.call_id, hangupWanted: false, done: false };
        $("call").disabled = true;
        $("hangup").disabled = false;
        render();
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("call-form").addEventListener("submit", place);
    $("hangup").addEventListener("click", hangup);
    Switchboard.start((session) => {
      $("from").focus();
      follow({
        onSnapshot: (live) => snapshot(live, session),
        onCall: record,
        onConnection: (up) => ($("connection").hidden = up),
      });
    });
  });
})();
