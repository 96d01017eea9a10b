// The operator view's SIP accounts (admins only): the list, a form that creates one, and a button per
// account that disables or enables it, over /api/v1/sip-accounts. The section stays hidden for anyone
// the API refuses (403) and when the gateway has no Kamailio database (503).
"use strict";

(() => {
  const { api } = Switchboard;
  const $ = (id) => document.getElementById(id);
  // The password policy's rules, in words (the API names the rule in `rule`).
  const RULES = {
    password_too_short: "The password is too short.",
    password_too_long: "The password is too long.",
    password_control_character: "The password contains a control character.",
    password_common: "That password is well known; choose another.",
    password_contains_user: "The password must not contain the user name.",
    password_reused: "That password was used before.",
  };

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text ?? "";
    return td;
  }

  function row(account) {
    const tr = document.createElement("tr");
    const state = cell("");
    const badge = document.createElement("span");
    badge.className = "badge" + (account.enabled ? " good" : " bad");
    badge.textContent = account.enabled ? "Enabled" : "Disabled";
    state.append(badge);
    const action = cell("");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "quiet";
    button.textContent = account.enabled ? "Disable" : "Enable";
    button.setAttribute("aria-label", `${button.textContent} ${account.uri}`);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api("PATCH", `/sip-accounts/${encodeURIComponent(account.user)}`, { enabled: !account.enabled });
        await load();
      } catch (error) {
        $("account-error").textContent = error.message;
        button.disabled = false;
      }
    });
    action.append(button);
    tr.append(cell(account.uri), cell(account.display_name), cell(account.aliases.join(", ")), cell(account.billing_account),
      state, action);
    return tr;
  }

  async function load() {
    const { accounts } = await api("GET", "/sip-accounts");
    $("accounts").tBodies[0].replaceChildren(...accounts.map(row));
    $("accounts-count").textContent = String(accounts.length);
  }

  $("account-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const error = $("account-error");
    error.textContent = "";
    const body = { user: form.user.value.trim(), password: form.password.value };
    for (const name of ["display_name", "billing_account"]) {
      if (form[name].value.trim()) body[name] = form[name].value.trim();
    }
    const aliases = form.aliases.value.split(/[\s,]+/).filter(Boolean);
    if (aliases.length) body.aliases = aliases;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", "/sip-accounts", body);
      form.reset();
      await load();
    } catch (failure) {
      error.textContent = RULES[failure.problem.rule] || failure.message;
      (failure.problem.rule ? form.password : form.user).focus();
    } finally {
      button.disabled = false;
    }
  });

  // Once logged in (operator.js starts the login), try the list.
  Switchboard.onSession(async () => {
    try {
      await load();
      $("accounts-section").hidden = false;
    } catch (error) {
      $("accounts-section").hidden = true; // 403: not an admin; 503: no Kamailio database
    }
  });
})();
