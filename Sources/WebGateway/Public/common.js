// Shared by the Click2Call page and the operator view: the login session, API requests with the
// CSRF token, the live events WebSocket, and the words the pages use for call states and causes.
// Plain JavaScript, no framework, nothing loaded from elsewhere.
"use strict";

const Switchboard = (() => {
  let session = null; // {user, csrf_token, expires_at}

  /** An API error: the problem+json body when there is one (RFC 9457). */
  class ApiError extends Error {
    constructor(status, problem) {
      super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = problem || {};
    }
  }

  /** fetch under /api/v1 with JSON in and out; POST/DELETE carry the session's CSRF token. */
  async function api(method, path, body, headers = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    if (!["GET", "HEAD"].includes(method) && session) init.headers["X-CSRF-Token"] = session.csrf_token;
    const response = await fetch("/api/v1" + path, init);
    const type = response.headers.get("Content-Type") || "";
    const data = type.includes("json") ? await response.json().catch(() => null) : null;
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  /** The current session (after a reload the cookie is still there), or null. */
  async function resume() {
    try {
      session = await api("GET", "/session");
    } catch (error) {
      if (error.status !== 401 && error.status !== 404) throw error;
      session = null;
    }
    return session;
  }

  async function login(username, password) {
    session = await api("POST", "/session", { username, password });
    return session;
  }

  async function logout() {
    try {
      await api("DELETE", "/session");
    } finally {
      session = null;
    }
  }

  /**
   * Follows /api/v1/events: onSnapshot(calls) first, then onCall(call) for every change.
   * Reconnects with back-off until close() is called; onSnapshot runs again after each reconnect.
   */
  function follow({ onSnapshot, onCall, onConnection }) {
    let socket = null;
    let closed = false;
    let delay = 500;
    function open() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      socket = new WebSocket(`${scheme}//${location.host}/api/v1/events`);
      socket.onopen = () => {
        delay = 500;
        onConnection && onConnection(true);
      };
      socket.onmessage = (message) => {
        const data = JSON.parse(message.data);
        if (data.type === "snapshot") onSnapshot && onSnapshot(data.calls);
        else if (data.type === "call") onCall && onCall(data.call);
      };
      socket.onclose = () => {
        onConnection && onConnection(false);
        if (closed) return;
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open();
    return {
      close() {
        closed = true;
        socket && socket.close();
      },
    };
  }

  /** A call's end cause in words. */
  const causes = {
    normal_clearing: "Hung up",
    hangup_command: "Hung up",
    busy: "Busy",
    no_answer: "No answer",
    rejected: "Declined",
    unavailable: "Not reachable",
    failed: "Call failed",
    caller_cancelled: "Cancelled",
    bridge_restart: "Service restarted",
    shutdown: "Service shut down",
    limit: "Too many calls",
    session_expired: "Connection lost",
    lost: "Connection lost",
    redirected: "Redirected",
  };
  function causeInWords(cause) {
    return causes[cause] || (cause ? cause.replace(/_/g, " ") : "Ended");
  }

  /** The user part of sip:alice@example.com, or the text as it is. */
  function party(uri) {
    if (!uri) return "";
    const match = /^(?:sips?|tel):([^@;]+)/i.exec(uri);
    return match ? decodeURIComponent(match[1]) : uri;
  }

  /** 75 → "01:15"; an hour and more → "1:01:15". */
  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const two = (n) => String(n).padStart(2, "0");
    const h = Math.floor(s / 3600);
    return (h ? h + ":" : "") + two(Math.floor((s % 3600) / 60)) + ":" + two(s % 60);
  }

  /** Shows the login form until a session exists; then calls onReady(session). Wires up log out. */
  async function start(onReady) {
    const loginSection = document.getElementById("login-section");
    const form = document.getElementById("login-form");
    const error = document.getElementById("login-error");
    const who = document.getElementById("who");
    const appSections = document.querySelectorAll("[data-needs-login]");
    function show(loggedIn) {
      loginSection.hidden = loggedIn;
      who.hidden = !loggedIn;
      appSections.forEach((section) => (section.hidden = !loggedIn));
      if (loggedIn) document.getElementById("user").textContent = session.user;
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.textContent = "";
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        await login(form.username.value.trim(), form.password.value);
        form.password.value = "";
        show(true);
        onReady(session);
      } catch (failure) {
        error.textContent = failure.status === 401 ? "Wrong user name or password." : failure.message;
        form.password.focus();
      } finally {
        button.disabled = false;
      }
    });
    document.getElementById("logout").addEventListener("click", async () => {
      await logout().catch(() => {});
      location.reload();
    });
    if (await resume()) {
      show(true);
      onReady(session);
    } else {
      show(false);
      form.username.focus();
    }
  }

  /**
   * Runs `callback` once a session exists (start() shows #who then) and each time #who is shown anew; returns
   * the guarded call, for a page that wants to look again later (nothing happens while logged out).
   */
  function onSession(callback) {
    const who = document.getElementById("who");
    const run = () => {
      if (!who.hidden) callback();
    };
    new MutationObserver(run).observe(who, { attributes: true, attributeFilter: ["hidden"] });
    run();
    return run;
  }

  return { api, ApiError, start, follow, onSession, causeInWords, party, clock, get session() { return session; } };
})();
