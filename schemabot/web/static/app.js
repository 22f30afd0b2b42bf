// schemabot's pages: poll, replace the server-rendered fragments, and derive one ETA per task from
// a rate smoothed over the last 30 s of the copy (as `schemabot watch` does: schemabot/progress.py).
"use strict";
const WINDOW = 30, MIN_SPAN = 1, samples = new Map();

function duration(s) {
  if (s === null) return "—";
  s = Math.round(s);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
}

function estimate(row) {
  const id = row.dataset.task, rows = Number(row.dataset.rows), total = Number(row.dataset.total);
  const now = performance.now() / 1000;
  let list = samples.get(id) || [];
  if (list.length && rows < list[list.length - 1][1]) list = [];
  list.push([now, rows]);
  while (list.length > 2 && now - list[1][0] >= WINDOW) list.shift();
  samples.set(id, list);
  let rate = null;
  if (list.length >= 2) {
    const [t0, r0] = list[0], [t1, r1] = list[list.length - 1];
    if (t1 - t0 >= MIN_SPAN && r1 > r0) rate = (r1 - r0) / (t1 - t0);
  }
  const running = row.dataset.state === "running" && total > 0;
  row.querySelector(".rate").textContent = running && rate !== null
    ? (rate >= 100 ? Math.round(rate).toLocaleString("en") : rate.toFixed(1)) + " rows/s" : "—";
  row.querySelector(".eta").textContent = running && rate !== null ? duration(Math.max(0, (total - rows) / rate)) : "—";
}

async function refresh() {
  const page = document.body.dataset.page, id = document.body.dataset.apply;
  const url = page === "apply" ? `/ui/applies/${encodeURIComponent(id)}/live` : "/ui/applies/live";
  try {
    const response = await fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"});
    if (response.status === 401) { location.href = "/ui/login"; return; }
    if (!response.ok) throw new Error("HTTP " + response.status);
    const doc = await response.json();
    for (const [key, html] of Object.entries(doc.fragments)) {
      const el = document.getElementById(key);
      if (el && el.innerHTML !== html) el.innerHTML = html;
    }
    document.querySelectorAll("tr[data-task]").forEach(estimate);
    const status = document.getElementById("poll-status");
    if (status) status.textContent = "updated " + new Date().toLocaleTimeString();
    if (doc.terminal) return;
  } catch (err) {
    const status = document.getElementById("poll-status");
    if (status) status.textContent = "update failed: " + err.message + "; retrying";
  }
  setTimeout(refresh, 1000);
}

async function control(button) {
  const id = document.body.dataset.apply, kind = button.dataset.control;
  if (!confirm(`${kind} ${id}?`)) return;
  const response = await fetch(`/ui/applies/${encodeURIComponent(id)}/control/${kind}`, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-Schemabot-UI": "1"}, body: "{}",
  });
  const doc = await response.json().catch(() => ({}));
  document.getElementById("control-result").textContent =
    response.ok ? `${kind} requested` : `${kind} refused: ${doc.error || response.status}`;
}

async function login(form) {
  const token = form.querySelector("input").value.trim();
  const response = await fetch("/ui/session", {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-Schemabot-UI": "1"}, body: JSON.stringify({token}),
  });
  if (response.ok) { location.href = "/ui/applies"; return; }
  document.getElementById("login-error").textContent = "unknown token";
}

document.addEventListener("click", (e) => {
  const button = e.target.closest("button[data-control]");
  if (button) control(button);
});
document.addEventListener("submit", (e) => { e.preventDefault(); login(e.target); });
if (document.body.dataset.page !== "login") {
  document.querySelectorAll("tr[data-task]").forEach(estimate);
  setTimeout(refresh, 1000);
}
