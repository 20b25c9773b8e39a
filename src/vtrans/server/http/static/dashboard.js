// The vtrans dashboard: one event stream for the page of jobs on screen (GET /v1/jobs/events),
// the recent webhooks (GET /v1/webhooks) and the service's figures (GET /metrics), polled.
// It calls the same API as any client, with the visitor's key when the service asks for one.
"use strict";

const PAGE_SIZE = 25;
const POLL_MS = 2000;
const KEY_STORE = "vtrans.apiKey";

const state = {
  filter: "",          // "", "pending", "completed" or "error"
  cursors: [null],     // the cursor of each page visited; the last is the one shown
  next: null,          // the shown page's next_cursor
  stream: null,        // AbortController of the open stream
  rows: new Map(),     // job id -> <tr>
  lastMetrics: null,   // {t, requests} of the previous /metrics read
};

const $ = (id) => document.getElementById(id);

function headers() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// --- the key ----------------------------------------------------------------------------------

function askForKey(message) {
  $("main").hidden = true;
  $("key-form").hidden = false;
  $("key-error").textContent = message || "";
  setLive(false, "needs a key");
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORE, $("key").value.trim());
  $("key-form").hidden = true;
  $("main").hidden = false;
  restart();
});

// --- the page's event stream --------------------------------------------------------------------

function setLive(on, text) {
  const live = $("live");
  live.classList.toggle("off", !on);
  live.textContent = text;
}

function streamUrl() {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.filter) query.set("result", state.filter);
  const cursor = state.cursors[state.cursors.length - 1];
  if (cursor) query.set("cursor", cursor);
  return `/v1/jobs/events?${query}`;
}

async function follow() {
  if (state.stream) state.stream.abort();
  const controller = new AbortController();
  state.stream = controller;
  let retry = 1000;
  const keySent = Boolean(sessionStorage.getItem(KEY_STORE));
  try {
    const response = await fetch(streamUrl(), { headers: headers(), signal: controller.signal });
    if (response.status === 401) {
      sessionStorage.removeItem(KEY_STORE);
      askForKey(keySent ? "That key was not accepted." : "");
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    setLive(true, "live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = parseFrame(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (frame.retry) retry = frame.retry;
        if (frame.event === "page") render(JSON.parse(frame.data));
      }
    }
  } catch (error) {
    if (controller.signal.aborted) return;
    setLive(false, "reconnecting…");
  }
  if (!controller.signal.aborted) setTimeout(() => state.stream === controller && follow(), retry);
}

function parseFrame(text) {
  const frame = { event: "message", data: "", retry: 0 };
  for (const line of text.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") frame.event = value;
    else if (field === "data") frame.data += value;
    else if (field === "retry") frame.retry = Number(value) || 0;
  }
  return frame;
}

// --- rendering ------------------------------------------------------------------------------------

function fmtSeconds(s) {
  if (s == null) return "";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

function fmtAgo(iso) {
  const s = (Date.now() - Date.parse(iso)) / 1000;
  return s < 60 ? `${Math.max(0, Math.round(s))} s ago` : s < 3600 ? `${Math.round(s / 60)} min ago` : new Date(iso).toLocaleString();
}

function cell(row, index) {
  return row.children[index];
}

function makeRow(job) {
  const row = document.createElement("tr");
  row.dataset.jobId = job.id;
  for (let i = 0; i < 7; i++) row.appendChild(document.createElement("td"));
  cell(row, 0).className = "id";
  cell(row, 0).textContent = job.id.slice(0, 12) + "…";
  cell(row, 0).title = job.id;
  cell(row, 1).textContent = job.language;
  cell(row, 2).textContent = fmtSeconds(job.video_seconds);
  const progress = document.createElement("div");
  progress.className = "progress-cell";
  progress.innerHTML = '<div class="track"><span style="width:0%"></span></div><span class="pct"></span>';
  cell(row, 4).appendChild(progress);
  return row;
}

function updateRow(row, job) {
  row.className = job.result;
  row.dataset.result = job.result;
  row.dataset.progress = String(job.progress);
  const badge = document.createElement("span");
  badge.className = `badge ${job.result}`;
  badge.textContent = job.error ? `error · ${job.error.code}` : job.result;
  if (job.error) badge.title = job.error.message;
  cell(row, 3).replaceChildren(badge);
  const pct = Math.round(job.progress * 100);
  row.querySelector(".track > span").style.width = `${pct}%`;
  row.querySelector(".pct").textContent = `${pct}%`;
  let estimate;
  if (job.result === "pending") {
    const left = job.estimated_seconds_remaining;
    // An estimate run out while the job goes on says only that the end is near, as the CLI does.
    estimate = left == null ? "" : left < 0.5 ? "any moment now" : `≈ ${fmtSeconds(left)} left`;
  } else if (job.finished_at) {
    estimate = `took ${fmtSeconds((Date.parse(job.finished_at) - Date.parse(job.created_at)) / 1000)}`;
  }
  cell(row, 5).textContent = estimate || "";
  cell(row, 6).textContent = fmtAgo(job.created_at);
}

function render(page) {
  const counts = page.counts;
  for (const result of ["pending", "completed", "error"]) $(`count-${result}`).textContent = counts[result];
  $("count-all").textContent = counts.pending + counts.completed + counts.error;
  const body = $("jobs").tBodies[0];
  const seen = new Set();
  page.items.forEach((job, index) => {
    seen.add(job.id);
    let row = state.rows.get(job.id);
    if (!row) state.rows.set(job.id, (row = makeRow(job)));
    updateRow(row, job);
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] || null);
  });
  for (const [id, row] of state.rows) {
    if (!seen.has(id)) {
      row.remove();
      state.rows.delete(id);
    }
  }
  $("jobs-empty").hidden = page.items.length > 0;
  state.next = page.next_cursor;
  $("older").disabled = !state.next;
  $("newer").disabled = $("newest").disabled = state.cursors.length <= 1;
  $("page-no").textContent = `page ${state.cursors.length}`;
}

// --- filter and pages -------------------------------------------------------------------------------

function restart() {
  state.rows.clear();
  $("jobs").tBodies[0].replaceChildren();
  $("filter-name").textContent = state.filter ? `· ${state.filter} only` : "";
  for (const button of document.querySelectorAll("[data-filter]")) {
    button.setAttribute("aria-pressed", String(button.dataset.filter === state.filter));
  }
  follow();
  pollWebhooks();
}

for (const button of document.querySelectorAll("[data-filter]")) {
  button.addEventListener("click", () => {
    state.filter = button.dataset.filter;
    state.cursors = [null];
    restart();
  });
}
$("older").addEventListener("click", () => {
  if (state.next) state.cursors.push(state.next);
  restart();
});
$("newer").addEventListener("click", () => {
  if (state.cursors.length > 1) state.cursors.pop();
  restart();
});
$("newest").addEventListener("click", () => {
  state.cursors = [null];
  restart();
});

// --- webhooks and service figures, polled ----------------------------------------------------------------

async function pollWebhooks() {
  try {
    const response = await fetch("/v1/webhooks?limit=10", { headers: headers() });
    if (!response.ok) return;
    const { items } = await response.json();
    const body = $("webhooks").tBodies[0];
    body.replaceChildren(
      ...items.map((delivery) => {
        const row = document.createElement("tr");
        row.dataset.state = delivery.state;
        const badge = document.createElement("span");
        badge.className = `badge ${delivery.state}`;
        badge.textContent = delivery.state;
        const due = new Date(delivery.due_at * 1000);
        const when = delivery.state === "pending" ? `next ${due.toLocaleTimeString()}` : due.toLocaleTimeString();
        const cells = [delivery.id.slice(0, 12) + "…", delivery.job_id.slice(0, 12) + "…", badge, String(delivery.attempts), when, delivery.last_error || ""];
        for (const value of cells) {
          const td = document.createElement("td");
          if (typeof value === "string") td.textContent = value;
          else td.appendChild(value);
          row.appendChild(td);
        }
        row.children[0].className = row.children[1].className = "id";
        return row;
      }),
    );
    $("webhooks-empty").hidden = items.length > 0;
  } catch (error) {
    /* the next poll tries again */
  }
}

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[4]) });
  }
  return samples;
}

async function pollMetrics() {
  try {
    const response = await fetch("/metrics");
    if (!response.ok) {
      $("rate").textContent = $("active").textContent = $("held").textContent = "off";
      return;
    }
    const samples = parseMetrics(await response.text());
    const sum = (name, test = () => true) =>
      samples.filter((s) => s.name === name && test(s.labels)).reduce((total, s) => total + s.value, 0);
    const requests = sum("http_server_request_duration_seconds_count") + sum("vtrans_held_request_duration_seconds_count");
    const now = performance.now();
    if (state.lastMetrics) {
      const rate = (requests - state.lastMetrics.requests) / ((now - state.lastMetrics.t) / 1000);
      $("rate").textContent = Math.max(0, rate).toFixed(1);
    }
    state.lastMetrics = { t: now, requests };
    $("active").textContent = String(sum("http_server_active_requests"));
    $("held").textContent = ["long-poll", "batch", "stream"]
      .map((kind) => sum("vtrans_held_requests", (labels) => labels.kind === kind))
      .join(" · ");
  } catch (error) {
    /* the next poll tries again */
  }
}

restart();
pollMetrics();
setInterval(pollMetrics, POLL_MS);
setInterval(() => !$("main").hidden && pollWebhooks(), POLL_MS);
