"use strict";
// Diffute console: a client of the public API. State lives in sessionStorage
// (the API key, organization and project) and in the URL hash (the view).

const $ = id => document.getElementById(id);
const session = {
  get key() { return sessionStorage.getItem("diffute.key") || ""; },
  get org() { return sessionStorage.getItem("diffute.org") || ""; },
  get project() { return sessionStorage.getItem("diffute.project") || ""; },
  save(key, org, project) {
    sessionStorage.setItem("diffute.key", key);
    sessionStorage.setItem("diffute.org", org);
    sessionStorage.setItem("diffute.project", project);
  },
  clear() { sessionStorage.removeItem("diffute.key"); },
};

// el builds an element; strings become text nodes, never HTML.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

const tenant = () => "/" + encodeURIComponent(session.org) + "/" + encodeURIComponent(session.project);
const base = () => tenant() + "/media/inference";
const terminal = s => s === "succeeded" || s === "failed" || s === "canceled";

let models = null; // GET …/models, once per sign-in

// A SessionEnded error stops whatever view made the call: the key was refused.
class SessionEnded extends Error {}

// endSession forgets the key and shows the sign-in screen with why.
function endSession(status, detail) {
  session.clear();
  models = null;
  $("key").value = "";
  const why = status === 403 ?
    "This API key may not act on " + session.org + "/" + session.project + " any more" :
    "The server no longer accepts this API key: it was revoked or has expired";
  $("login-notice").textContent = why + (detail ? " (" + detail + ")" : "") + ". Sign in again with a valid key.";
  $("login-notice").hidden = false;
  route();
}

// api calls the API with the key; a problem document becomes an Error with its
// detail. A 401 or 403 ends the session (unless opts.signIn: the sign-in form
// reports it itself).
async function api(method, path, body, opts) {
  const init = { method, headers: { "x-api-key": session.key } };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  if (opts && opts.signal) init.signal = opts.signal;
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
  if (!resp.ok) {
    const detail = data && data.detail ? (data.field ? data.field + ": " : "") + data.detail : "";
    if ((resp.status === 401 || resp.status === 403) && !(opts && opts.signIn)) {
      endSession(resp.status, detail);
      throw new SessionEnded(detail);
    }
    const err = new Error(detail || resp.status + " " + resp.statusText); err.status = resp.status; throw err;
  }
  return data;
}

// --- views ---
// Every route() starts a generation; work of an older one (a slow answer for the
// job page the user has left) checks current(gen) and draws nothing.
let generation = 0;
const current = gen => gen === generation;
let leave = []; // stops the timers and streams of the view on screen

function show(id, title) {
  for (const s of ["login", "jobs", "job", "new"]) $(s).hidden = s !== id;
  $("who").textContent = session.key ? session.org + " / " + session.project : "";
  $("signout").hidden = !session.key;
  for (const [nav, view] of [["nav-jobs", "jobs"], ["nav-new", "new"]]) {
    if (view === id) $(nav).setAttribute("aria-current", "page"); else $(nav).removeAttribute("aria-current");
  }
  setTitle(title);
  announce("");
}

const setTitle = t => { document.title = t + " · Diffute"; };
const announce = msg => { $("status").textContent = msg; };

async function route() {
  generation++;
  for (const stop of leave) stop();
  leave = [];
  const gen = generation;
  if (!session.key) { show("login", "Sign in"); return; }
  $("login-notice").hidden = true;
  const h = location.hash || "#/jobs";
  const m = h.match(/^#\/job\/([^/]+)$/);
  try {
    if (m) { show("job", "Job " + decodeURIComponent(m[1])); await jobPage(decodeURIComponent(m[1]), gen); }
    else if (h === "#/new") { show("new", "Playground"); await playground(gen); }
    else { show("jobs", "Jobs"); await jobsPage(gen); }
  } catch (e) {
    if (!(e instanceof SessionEnded) && e.name !== "AbortError") throw e;
  }
}

const fmtTime = t => t ? new Date(t).toLocaleString() : "";
const pct = f => Math.round((f || 0) * 100) + "%";

// setBar fills a progressbar element (role=progressbar, its child the fill).
function setBar(bar, fraction) {
  const v = Math.round(Math.min(Math.max(fraction || 0, 0), 1) * 100);
  bar.setAttribute("aria-valuenow", String(v));
  bar.firstElementChild.style.width = v + "%";
}
const newBar = label => el("div", { class: "bar", role: "progressbar", "aria-label": label, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" }, el("div"));

// --- jobs list ---
// The list refreshes itself: often while a job on it has not ended, seldom
// otherwise (a job submitted elsewhere appears), never while the tab is hidden.
// "Idle" is no key or pointer input for listIdleAfter with every listed job ended.
const listBusyPoll = 1000, listIdlePoll = 3000, listIdleAfter = 10 * 60 * 1000;
let lastInput = Date.now();
let nextBefore = null;

function jobRow(j) {
  const bar = newBar("Progress of job " + j.job_id);
  const row = el("tr", { class: "job", "data-job": j.job_id, onclick: ev => { if (!ev.target.closest("a")) location.hash = "#/job/" + j.job_id; } },
    el("td", null, el("a", { href: "#/job/" + j.job_id }, String(j.job_id))), el("td", null, j.name), el("td", null, j.model),
    el("td", null, el("span", { class: "badge" })), el("td", { class: "progress" }, bar, el("span", { class: "pct" })),
    el("td", { class: "images" }), el("td", null, fmtTime(j.created_at)));
  updateRow(row, j);
  return row;
}

// updateRow changes only the cells that move, so a refresh neither flickers nor
// loses the scroll position.
function updateRow(row, j) {
  const badge = row.querySelector(".badge");
  if (badge.textContent !== j.status) { badge.textContent = j.status; badge.className = "badge " + j.status; }
  row.dataset.status = j.status;
  const p = j.status === "succeeded" ? 1 : j.progress;
  setBar(row.querySelector(".bar"), p);
  row.querySelector(".pct").textContent = pct(p);
  row.querySelector(".images").textContent = String(j.images);
}

async function loadJobs(gen, append) {
  const tbody = $("jobs-table").tBodies[0];
  const q = "?limit=20" + (append && nextBefore ? "&before=" + nextBefore : "");
  const list = await api("GET", base() + q);
  if (!current(gen)) return;
  $("jobs-error").textContent = "";
  if (!append) tbody.replaceChildren();
  for (const j of list.jobs) tbody.append(jobRow(j));
  nextBefore = list.next_before || null;
  $("more").hidden = !nextBefore;
  $("jobs-empty").hidden = tbody.children.length > 0;
}

// mergeJobs updates the rows of the newest page in place and puts new jobs on top.
async function mergeJobs(gen) {
  const tbody = $("jobs-table").tBodies[0];
  const list = await api("GET", base() + "?limit=20");
  if (!current(gen)) return;
  $("jobs-error").textContent = "";
  if (!tbody.children.length) {
    nextBefore = list.next_before || null;
    $("more").hidden = !nextBefore;
  }
  let anchor = tbody.firstElementChild;
  for (const j of list.jobs) {
    const row = tbody.querySelector('tr[data-job="' + j.job_id + '"]');
    if (row) { updateRow(row, j); anchor = row.nextElementSibling; continue; }
    tbody.insertBefore(jobRow(j), anchor);
  }
  $("jobs-empty").hidden = tbody.children.length > 0;
}

async function jobsPage(gen) {
  try {
    await loadJobs(gen);
  } catch (e) {
    if (e instanceof SessionEnded) throw e;
    $("jobs-error").textContent = e.message;
  }
  let timer = null;
  const schedule = () => {
    clearTimeout(timer);
    if (!current(gen) || document.hidden) return;
    const busy = [...$("jobs-table").tBodies[0].rows].some(r => !terminal(r.dataset.status));
    if (!busy && Date.now() - lastInput > listIdleAfter) { timer = null; return; }
    timer = setTimeout(tick, busy ? listBusyPoll : listIdlePoll);
  };
  const tick = async () => {
    try { await mergeJobs(gen); } catch (e) {
      if (e instanceof SessionEnded) return;
      if (current(gen)) $("jobs-error").textContent = "Refreshing the list failed: " + e.message;
    }
    schedule();
  };
  const onVisible = () => { if (!document.hidden) tick(); else { clearTimeout(timer); timer = null; } };
  const onInput = () => { lastInput = Date.now(); if (timer === null && !document.hidden) tick(); };
  document.addEventListener("visibilitychange", onVisible);
  for (const e of ["keydown", "pointerdown", "pointermove", "wheel"]) document.addEventListener(e, onInput, { passive: true });
  leave.push(() => {
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisible);
    for (const e of ["keydown", "pointerdown", "pointermove", "wheel"]) document.removeEventListener(e, onInput);
  });
  schedule();
}

// --- job page ---
function clearJob() {
  for (const id of ["job-name", "job-id", "job-status", "job-meta", "job-error", "job-summary", "webhook-state", "webhook-error"]) $(id).textContent = "";
  $("job-status").className = "badge";
  setBar($("job-progress"), 0);
  $("cancel").hidden = true;
  $("prompts").replaceChildren();
  $("messages").tBodies[0].replaceChildren();
  $("deliveries").tBodies[0].replaceChildren();
  $("job-webhook").hidden = true;
}

// job is what the page knows of the job on screen, from its status and events.
let job = null;

function fmtDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  const two = n => String(n).padStart(2, "0");
  return h ? h + ":" + two(m % 60) + ":" + two(s % 60) : m + ":" + two(s % 60);
}

// summary writes e.g. "3/4 images · step 12/25 · 0:14 elapsed".
function summary() {
  if (!job) return;
  const prompts = job.prompts || [];
  const done = prompts.reduce((n, p) => n + (p.images_done || 0), 0);
  const total = prompts.reduce((n, p) => n + (p.num_images || 0), 0);
  const parts = [done + "/" + total + " images"];
  const active = prompts.find(p => p.steps_total > 0 && p.images_done < p.num_images);
  if (job.status === "running" && active) parts.push("step " + active.steps_done + "/" + active.steps_total);
  if (job.status === "queued") parts.push("queued");
  if (job.started_at) {
    const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
    const took = fmtDuration(end - Date.parse(job.started_at));
    parts.push(job.finished_at ? "took " + took : took + " elapsed");
  }
  $("job-summary").textContent = parts.join(" · ");
}

function setStatus(status) {
  const b = $("job-status");
  if (b.textContent !== status) { b.textContent = status; b.className = "badge " + status; announce("Job " + job.job_id + ": " + status); }
  setTitle("Job " + job.job_id + " " + status);
}

// renderJob draws a full status: parameters, progress and the gallery of each prompt.
function renderJob(st) {
  job = { job_id: st.job_id, status: st.status, started_at: st.started_at, finished_at: st.finished_at, prompts: st.prompts };
  $("job-name").textContent = st.name;
  $("job-id").textContent = "#" + st.job_id;
  setStatus(st.status);
  setBar($("job-progress"), st.status === "succeeded" ? 1 : st.progress);
  $("job-meta").textContent = "Model " + st.model + " · created " + fmtTime(st.created_at) +
    (st.started_at ? " · started " + fmtTime(st.started_at) : "") + (st.finished_at ? " · finished " + fmtTime(st.finished_at) : "");
  $("job-error").textContent = st.error || "";
  $("cancel").hidden = terminal(st.status);
  const box = $("prompts");
  st.prompts.forEach(p => {
    let card = box.querySelector('[data-prompt="' + CSS.escape(p.name) + '"]');
    if (!card) {
      card = el("div", { class: "prompt-card", "data-prompt": p.name },
        el("h3", null, p.name), el("p", { class: "text" }, p.prompt + (p.style ? ", " + p.style : "")),
        p.negative_prompt ? el("p", { class: "params" }, "Negative: " + p.negative_prompt) : null,
        el("p", { class: "params settings" }), newBar("Progress of prompt " + p.name), el("div", { class: "gallery" }));
      box.append(card);
    }
    const params = [p.width + "×" + p.height, p.num_images + " image(s)", "seed " + p.seed + (p.num_images > 1 ? "…" + (p.seed + p.num_images - 1) : "")];
    if (p.steps) params.push(p.steps + " steps");
    if (p.guidance_scale !== undefined) params.push("guidance " + p.guidance_scale);
    if (p.scheduler) params.push(p.scheduler);
    params.push(p.images_done + "/" + p.num_images + " done");
    card.querySelector(".settings").textContent = params.join(" · ");
    setBar(card.querySelector(".bar"), p.progress);
    const urls = st.manifest ? (st.manifest.images[p.name] || []) : (p.images || []);
    urls.forEach((u, k) => addImage(p.name, k, u));
  });
  summary();
}

function addImage(prompt, index, url) {
  const card = $("prompts").querySelector('[data-prompt="' + CSS.escape(prompt) + '"]');
  if (!card) return;
  const g = card.querySelector(".gallery");
  if (g.querySelector('[data-index="' + index + '"]')) return;
  const img = el("img", { src: url, alt: prompt + " #" + index, "data-index": index, loading: "eager" });
  g.append(el("a", { href: url, target: "_blank", rel: "noopener" }, img));
}

function renderProgress(ev) {
  job.status = ev.status;
  setStatus(ev.status);
  setBar($("job-progress"), ev.progress);
  for (const p of ev.prompts) {
    const card = $("prompts").querySelector('[data-prompt="' + CSS.escape(p.name) + '"]');
    if (card) setBar(card.querySelector(".bar"), p.progress);
    const known = job.prompts.find(q => q.name === p.name);
    if (known) Object.assign(known, { images_done: p.images_done, steps_done: p.steps_done, steps_total: p.steps_total, progress: p.progress });
  }
  summary();
}

// renderDeliveries draws the webhook's messages (with a Redeliver button and the
// time of the next attempt) and every attempt.
async function renderDeliveries(id, st, gen) {
  const w = st.webhook || { state: "none" };
  $("job-webhook").hidden = false;
  $("webhook-state").textContent = w.state === "none" ? "No webhook was requested." :
    w.url + " — " + w.state + ", " + w.attempts + " attempt(s)" + (w.last_status_code ? ", last answer " + w.last_status_code : "");
  if (w.state === "none") {
    $("messages").tBodies[0].replaceChildren();
    $("deliveries").tBodies[0].replaceChildren();
    return null;
  }
  const log = await api("GET", base() + "/" + encodeURIComponent(id) + "/deliveries");
  if (!current(gen)) return null;
  const msgs = $("messages").tBodies[0];
  msgs.replaceChildren();
  for (const m of log.messages || []) {
    const last = m.event === "completed"; // the terminal message, the one the API redelivers
    let next = "—";
    if (m.state === "pending") {
      const wait = m.next_attempt_at ? Date.parse(m.next_attempt_at) - Date.now() : null;
      next = wait === null ? "sending now" : wait <= 0 ? "due now" : fmtTime(m.next_attempt_at) + " (in " + fmtDuration(wait + 999) + ")";
    }
    const button = last ? el("button", { type: "button", class: "redeliver", "data-delivery": m.delivery_id,
      "aria-label": "Redeliver the " + m.event + " message", onclick: () => redeliver(id, gen) }, "Redeliver") : "";
    if (button && m.state === "pending") button.disabled = true;
    msgs.append(el("tr", { "data-delivery": m.delivery_id }, el("td", null, el("code", null, m.webhook_id)),
      el("td", null, m.event + (m.prompt ? " (" + m.prompt + ")" : "")), el("td", null, m.state), el("td", null, m.attempts),
      el("td", { class: "next" }, next), el("td", null, button)));
  }
  const tbody = $("deliveries").tBodies[0];
  tbody.replaceChildren();
  for (const a of log.deliveries || []) {
    tbody.append(el("tr", null, el("td", null, fmtTime(a.at)), el("td", null, a.event), el("td", null, a.attempt),
      el("td", null, a.status_code || "—"), el("td", null, Math.round(a.latency_ms) + " ms"),
      el("td", null, a.error || a.response_excerpt || "")));
  }
  return log;
}

// watchDeliveries reads the delivery log again while a message is pending.
async function watchDeliveries(id, gen, rounds) {
  for (let n = 0; n < rounds && current(gen); n++) {
    const st = await api("GET", base() + "/" + encodeURIComponent(id));
    if (!current(gen)) return;
    const log = await renderDeliveries(id, st, gen);
    const pending = log && (log.messages || []).some(m => m.state === "pending");
    if (log && !pending && (log.messages || []).length) return;
    await new Promise(r => setTimeout(r, 500));
  }
}

async function redeliver(id, gen) {
  $("webhook-error").textContent = "";
  try {
    await api("POST", base() + "/" + encodeURIComponent(id) + "/redeliver");
    announce("The completed message of job " + id + " is queued again");
    await watchDeliveries(id, gen, 120);
  } catch (e) {
    if (!(e instanceof SessionEnded) && current(gen)) $("webhook-error").textContent = e.message;
  }
}

// follow reads the job's server-sent events with fetch (EventSource cannot send
// x-api-key) and calls on(name, data) per event until the stream ends.
async function follow(id, on, signal) {
  const resp = await fetch(base() + "/" + encodeURIComponent(id) + "/events", { headers: { "x-api-key": session.key }, signal });
  if (resp.status === 401 || resp.status === 403) {
    let detail = "";
    try { detail = (await resp.json()).detail || ""; } catch (e) { /* not JSON */ }
    endSession(resp.status, detail);
    throw new SessionEnded(detail);
  }
  if (!resp.ok) throw new Error("events: " + resp.status + " " + resp.statusText);
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i); buf = buf.slice(i + 2);
      let name = "", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (name) on(name, JSON.parse(data));
    }
  }
}

async function jobPage(id, gen) {
  clearJob();
  job = null;
  let st;
  try {
    st = await api("GET", base() + "/" + encodeURIComponent(id));
  } catch (e) {
    if (e instanceof SessionEnded || !current(gen)) throw e;
    clearJob();
    if (e.status === 404) {
      setTitle("Job not found");
      $("job-error").textContent = "There is no job " + id + " in " + session.org + "/" + session.project + ".";
    } else {
      setTitle("Job " + id);
      $("job-error").textContent = e.message;
    }
    return;
  }
  if (!current(gen)) return;
  renderJob(st);
  const tick = setInterval(summary, 1000);
  leave.push(() => clearInterval(tick));
  await renderDeliveries(id, st, gen).catch(e => { if (e instanceof SessionEnded) throw e; $("webhook-error").textContent = e.message; });
  if (terminal(st.status)) { clearInterval(tick); return; }
  const ctl = new AbortController();
  leave.push(() => ctl.abort());
  // A stream that ends before "done" (the server restarted, or the key was
  // revoked) is opened again after a look at the job, which ends the session
  // on a refused key.
  for (let tries = 0; current(gen); tries++) {
    let ended = false;
    try {
      await follow(id, (name, data) => {
        if (!current(gen)) return;
        if (name === "progress") {
          const started = job.status === "queued" && data.status !== "queued";
          renderProgress(data);
          if (started) api("GET", base() + "/" + encodeURIComponent(id)).then(s => { if (current(gen) && !terminal(job.status)) renderJob(s); }).catch(() => {});
        } else if (name === "image") addImage(data.prompt, data.index, data.url);
        else if (name === "done") { ended = true; renderJob(data); }
      }, ctl.signal);
    } catch (e) {
      if (e instanceof SessionEnded || e.name === "AbortError") throw e;
      if (current(gen)) $("job-error").textContent = e.message;
    }
    if (ended || !current(gen)) break;
    const s = await api("GET", base() + "/" + encodeURIComponent(id));
    if (!current(gen)) return;
    renderJob(s);
    if (terminal(s.status) || tries > 20) break;
    await new Promise(r => setTimeout(r, 1000));
  }
  clearInterval(tick);
  summary();
  // The webhook is sent after the job ends; show its first attempts as they come.
  if (current(gen) && st.webhook && st.webhook.state !== "none") await watchDeliveries(id, gen, 20);
}

// --- playground ---
let promptCount = 0;

const selectedModel = () => (models || []).find(m => m.name === $("f-model").value);

// applyDefaults fills a prompt's size, steps, guidance and schedulers from the model.
function applyDefaults(f, m) {
  if (!m) return;
  f.querySelector(".p-w").value = m.width;
  f.querySelector(".p-h").value = m.height;
  f.querySelector(".p-steps").value = m.default_steps;
  f.querySelector(".p-guidance").value = m.default_guidance_scale;
  const sel = f.querySelector(".p-scheduler");
  const was = sel.value;
  sel.replaceChildren(el("option", { value: "" }, "model's own"), ...(m.schedulers || []).map(s => el("option", { value: s }, s)));
  if ((m.schedulers || []).includes(was)) sel.value = was;
}

function describeModel(m) {
  $("f-model-info").textContent = m ? m.family + (m.turbo ? " turbo" : "") + " · native " + m.width + "×" + m.height +
    " · " + m.default_steps + " steps · guidance " + m.default_guidance_scale + " · " + m.source_format : "";
}

async function playground(gen) {
  if (!models) {
    $("new-fields").disabled = true;
    announce("Loading the models this server serves…");
    let list;
    try {
      list = await api("GET", tenant() + "/models");
    } catch (e) {
      if (e instanceof SessionEnded) throw e;
      if (current(gen)) { announce(""); $("new-error").textContent = "Listing the models failed: " + e.message; }
      return;
    }
    if (!current(gen)) return;
    $("new-error").textContent = "";
    models = list.models || [];
    const sel = $("f-model");
    sel.replaceChildren(...models.map(m => el("option", { value: m.name }, m.name)));
    if (!models.length) {
      $("new-error").textContent = "This server lists no models it serves; its operator sets them with diffute serve --models.";
      announce("");
      return;
    }
    describeModel(selectedModel());
    for (const f of $("f-prompts").children) applyDefaults(f, selectedModel());
    announce(models.length + " model(s) available");
  }
  if (!$("f-prompts").children.length) addPrompt();
  $("new-fields").disabled = models.length === 0;
}

function addPrompt() {
  const f = $("prompt-tpl").content.firstElementChild.cloneNode(true);
  promptCount++;
  const n = promptCount;
  f.querySelector(".p-legend").textContent = "Prompt " + n;
  f.querySelector(".p-name").value = "prompt_" + n;
  f.querySelector(".remove").setAttribute("aria-label", "Remove prompt " + n);
  f.querySelector(".remove").addEventListener("click", () => { if ($("f-prompts").children.length > 1) f.remove(); });
  applyDefaults(f, selectedModel());
  $("f-prompts").append(f);
}

async function submitJob(ev) {
  ev.preventDefault();
  $("new-error").textContent = "";
  const num = (e, sel) => { const v = e.querySelector(sel).value; return v === "" ? undefined : Number(v); };
  const req = {
    name: $("f-name").value,
    pretrained_model_name: $("f-model").value,
    output_format: $("f-format").value,
    prompts: [...$("f-prompts").children].map(f => {
      const p = { name: f.querySelector(".p-name").value, prompt: f.querySelector(".p-prompt").value };
      const style = f.querySelector(".p-style").value;
      if (style) p.style = style;
      const negative = f.querySelector(".p-negative").value;
      if (negative) p.negative_prompt = negative;
      const scheduler = f.querySelector(".p-scheduler").value;
      if (scheduler) p.scheduler = scheduler;
      for (const [k, sel] of [["num_images", ".p-n"], ["width", ".p-w"], ["height", ".p-h"], ["steps", ".p-steps"],
        ["guidance_scale", ".p-guidance"], ["seed", ".p-seed"]]) {
        const v = num(f, sel); if (v !== undefined) p[k] = v;
      }
      return p;
    }),
  };
  if ($("f-webhook").value) { req.webhook = $("f-webhook").value; req.secret = $("f-secret").value || undefined; }
  $("submit").disabled = true;
  try {
    const r = await api("PUT", base(), req);
    location.hash = "#/job/" + r.job_id;
  } catch (e) {
    if (!(e instanceof SessionEnded)) $("new-error").textContent = e.message;
  } finally {
    $("submit").disabled = false;
  }
}

// --- wiring ---
$("login-form").addEventListener("submit", async ev => {
  ev.preventDefault();
  session.save($("key").value.trim(), $("org").value.trim(), $("project").value.trim());
  $("login-error").textContent = "";
  try {
    await api("GET", base() + "?limit=1", undefined, { signIn: true });
    models = null;
    $("login-notice").hidden = true;
    if (!location.hash || location.hash === "#/login") location.hash = "#/jobs"; else route();
  } catch (e) {
    session.clear();
    $("login-error").textContent = e.message;
  }
});
$("refresh").addEventListener("click", () => { const gen = generation; loadJobs(gen).catch(e => { if (!(e instanceof SessionEnded)) $("jobs-error").textContent = e.message; }); });
$("signout").addEventListener("click", () => { session.clear(); models = null; $("key").value = ""; $("login-notice").hidden = true; route(); });
$("more").addEventListener("click", () => { const gen = generation; loadJobs(gen, true).catch(e => { if (!(e instanceof SessionEnded)) $("jobs-error").textContent = e.message; }); });
$("add-prompt").addEventListener("click", addPrompt);
$("f-model").addEventListener("change", () => {
  const m = selectedModel();
  describeModel(m);
  for (const f of $("f-prompts").children) applyDefaults(f, m);
});
$("new-form").addEventListener("submit", submitJob);
$("cancel").addEventListener("click", async () => {
  const id = location.hash.split("/").pop();
  const gen = generation;
  try { const st = await api("DELETE", base() + "/" + id); if (current(gen)) renderJob(st); } catch (e) {
    if (!(e instanceof SessionEnded) && current(gen)) $("job-error").textContent = e.message;
  }
});
window.addEventListener("hashchange", route);
route();
