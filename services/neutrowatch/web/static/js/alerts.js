// The alerts page: acknowledge with the bearer token the user typed (kept in sessionStorage,
// never sent anywhere but POST /alerts/{id}/ack); times shown in the browser's time zone.

import { el, when } from "./format.js";

const TOKEN = "neutrowatch.apiToken";
const BY = "neutrowatch.ackBy";
const $ = (id) => document.getElementById(id);

function localTimes(root = document) {
  for (const node of root.querySelectorAll("time[datetime]")) {
    const t = Date.parse(node.dateTime);
    if (Number.isFinite(t)) {
      node.title = node.textContent;
      node.textContent = when(node.dateTime);
    }
  }
}

function say(text, kind) {
  const box = $("ack-message");
  box.textContent = text;
  box.className = `message ${kind}`;
  box.hidden = false;
}

function showCredentials() {
  const token = sessionStorage.getItem(TOKEN);
  $("token-form").hidden = Boolean(token);
  $("token-set").hidden = !token;
  $("ack-as").textContent = sessionStorage.getItem(BY) || "";
  if (!token) $("ack-by").value = sessionStorage.getItem(BY) || "";
}

function forget() {
  sessionStorage.removeItem(TOKEN);
  showCredentials();
}

function acknowledged(row, ack) {
  row.dataset.state = "acknowledged";
  const at = el("time", { datetime: ack.at }, when(ack.at));
  row.querySelector("td.delivery").replaceChildren(
    el("span", { class: "state state-acknowledged" }, "Acknowledged"),
    el("span", { class: "detail" }, `by ${ack.by} at `, at));
  row.querySelector("td.action").replaceChildren();
}

const REFUSED = {
  401: "The server refused the API token (401 Unauthorized). Enter the token again.",
  403: "The server refused the API token (403 Forbidden).",
  404: "The notify service does not know this alert (404): it may not have been consumed yet.",
  503: "Acknowledging is not available: the server has no API token configured (503).",
};

async function acknowledge(button) {
  const token = sessionStorage.getItem(TOKEN);
  const by = sessionStorage.getItem(BY);
  if (!token || !by) {
    say("Enter your name and the API token first.", "error");
    $("ack-by").focus();
    return;
  }
  const row = button.closest("tr");
  const id = button.dataset.alertId;
  button.disabled = true;
  button.textContent = "Acknowledging…";
  try {
    const response = await fetch(`/alerts/${encodeURIComponent(id)}/ack`, {
      method: "POST", credentials: "same-origin",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ by }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok && body.acknowledged) {
      acknowledged(row, body.ack);
      say(body.already ? `Already acknowledged by ${body.ack.by}.` : "Acknowledged: escalation stopped.", "ok");
      return;
    }
    if (response.status === 401) forget();
    say(REFUSED[response.status] || `Acknowledging failed (${response.status}): ${body.error || "no reason given"}.`, "error");
  } catch (err) {
    say(`Could not reach the server: ${err.message}`, "error");
  }
  button.disabled = false;
  button.textContent = "Acknowledge";
}

function main() {
  localTimes();
  if (!document.querySelector("button.ack")) {
    $("ack-panel").hidden = true; // nothing notify could acknowledge on this page
  } else {
    showCredentials();
  }
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(BY, $("ack-by").value.trim());
    sessionStorage.setItem(TOKEN, $("ack-token").value.trim());
    $("ack-token").value = "";
    $("ack-message").hidden = true;
    showCredentials();
  });
  $("forget-token").addEventListener("click", forget);
  $("alerts-table").addEventListener("click", (event) => {
    const button = event.target.closest("button.ack");
    if (button && !button.disabled) acknowledge(button);
  });
  document.body.dataset.ready = "true";
}

main();
