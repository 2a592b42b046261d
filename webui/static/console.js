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

const base = () => "/" + encodeURIComponent(session.org) + "/" + encodeURIComponent(session.project) + "/media/inference";

// api calls the API with the key; a problem document becomes an Error with its detail.
async function api(method, path, body) {
  const init = { method, headers: { "x-api-key": session.key } };
  if (body !== undefined) { init.headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
  if (!resp.ok) {
    if (resp.status === 401) { session.clear(); }
    const msg = data && data.detail ? (data.field ? data.field + ": " : "") + data.detail : resp.status + " " + resp.statusText;
    const err = new Error(msg); err.status = resp.status; throw err;
  }
  return data;
}

// --- views ---
let stopStream = null; // aborts the events stream of the job page

function show(id) {
  for (const s of ["login", "jobs", "job", "new"]) $(s).hidden = s !== id;
  $("who").textContent = session.key ? session.org + " / " + session.project : "";
  $("signout").hidden = !session.key;
}

async function route() {
  if (stopStream) { stopStream(); stopStream = null; }
  if (!session.key) { show("login"); return; }
  const h = location.hash || "#/jobs";
  const m = h.match(/^#\/job\/(\d+)$/);
  if (m) { show("job"); await jobPage(m[1]); }
  else if (h === "#/new") { show("new"); if (!$("f-prompts").children.length) addPrompt(); }
  else { show("jobs"); await jobsPage(); }
}

const fmtTime = t => t ? new Date(t).toLocaleString() : "";
const pct = f => Math.round((f || 0) * 100) + "%";

let nextBefore = null;
async function jobsPage(append) {
  const tbody = $("jobs-table").tBodies[0];
  const q = "?limit=20" + (append && nextBefore ? "&before=" + nextBefore : "");
  try {
    const list = await api("GET", base() + q);
    if (!append) tbody.replaceChildren();
    for (const j of list.jobs) {
      tbody.append(el("tr", { class: "job", "data-job": j.job_id, onclick: () => { location.hash = "#/job/" + j.job_id; } },
        el("td", null, el("a", { href: "#/job/" + j.job_id }, String(j.job_id))), el("td", null, j.name), el("td", null, j.model),
        el("td", null, el("span", { class: "badge " + j.status }, j.status)), el("td", null, pct(j.progress)),
        el("td", null, j.images), el("td", null, fmtTime(j.created_at))));
    }
    nextBefore = list.next_before || null;
    $("more").hidden = !nextBefore;
    $("jobs-empty").hidden = tbody.children.length > 0;
  } catch (e) {
    if (e.status === 401) { route(); return; }
    tbody.replaceChildren(el("tr", null, el("td", { colspan: 7, class: "error" }, e.message)));
  }
}

// renderJob draws a full status: parameters, progress and the gallery of each prompt.
function renderJob(st) {
  $("job-name").textContent = st.name;
  $("job-id").textContent = "#" + st.job_id;
  $("job-status").textContent = st.status;
  $("job-status").className = "badge " + st.status;
  $("job-bar").style.width = pct(st.status === "succeeded" ? 1 : st.progress);
  $("job-meta").textContent = "Model " + st.model + " · created " + fmtTime(st.created_at) +
    (st.started_at ? " · started " + fmtTime(st.started_at) : "") + (st.finished_at ? " · finished " + fmtTime(st.finished_at) : "");
  $("job-error").textContent = st.error || "";
  $("cancel").hidden = st.status === "succeeded" || st.status === "failed" || st.status === "canceled";
  const box = $("prompts");
  st.prompts.forEach((p, i) => {
    let card = box.querySelector('[data-prompt="' + CSS.escape(p.name) + '"]');
    if (!card) {
      card = el("div", { class: "prompt-card", "data-prompt": p.name },
        el("h3", null, p.name), el("p", null, p.prompt + (p.style ? ", " + p.style : "")),
        el("p", { class: "params" }), el("div", { class: "bar" }, el("div")), el("div", { class: "gallery" }));
      box.append(card);
    }
    const params = [p.width + "×" + p.height, p.num_images + " image(s)", "seed " + p.seed + (p.num_images > 1 ? "…" + (p.seed + p.num_images - 1) : "")];
    if (p.steps) params.push(p.steps + " steps");
    if (p.guidance_scale !== undefined) params.push("guidance " + p.guidance_scale);
    if (p.scheduler) params.push(p.scheduler);
    params.push(p.images_done + "/" + p.num_images + " done" + (p.steps_total && p.images_done < p.num_images ? ", step " + p.steps_done + "/" + p.steps_total : ""));
    card.querySelector(".params").textContent = params.join(" · ");
    card.querySelector(".bar>div").style.width = pct(p.progress);
    const urls = st.manifest ? (st.manifest.images[p.name] || []) : (p.images || []);
    urls.forEach((u, k) => addImage(p.name, k, u));
  });
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
  $("job-status").textContent = ev.status;
  $("job-status").className = "badge " + ev.status;
  $("job-bar").style.width = pct(ev.progress);
  for (const p of ev.prompts) {
    const card = $("prompts").querySelector('[data-prompt="' + CSS.escape(p.name) + '"]');
    if (card) card.querySelector(".bar>div").style.width = pct(p.progress);
  }
}

async function renderDeliveries(id, st) {
  const w = st.webhook || { state: "none" };
  $("webhook-state").textContent = w.state === "none" ? "No webhook was requested." :
    w.url + " — " + w.state + ", " + w.attempts + " attempt(s)" + (w.last_status_code ? ", last answer " + w.last_status_code : "");
  const tbody = $("deliveries").tBodies[0];
  tbody.replaceChildren();
  if (w.state === "none") return;
  const log = await api("GET", base() + "/" + id + "/deliveries");
  for (const a of log.deliveries || []) {
    tbody.append(el("tr", null, el("td", null, fmtTime(a.at)), el("td", null, a.event), el("td", null, a.attempt),
      el("td", null, a.status_code || "—"), el("td", null, Math.round(a.latency_ms) + " ms"),
      el("td", null, a.error || a.response_excerpt || "")));
  }
}

// follow reads the job's server-sent events with fetch (EventSource cannot send
// x-api-key) and calls on(name, data) per event until the stream ends.
async function follow(id, on, signal) {
  const resp = await fetch(base() + "/" + id + "/events", { headers: { "x-api-key": session.key }, signal });
  if (!resp.ok) throw new Error("events: " + resp.status);
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

async function jobPage(id) {
  $("prompts").replaceChildren();
  $("deliveries").tBodies[0].replaceChildren();
  $("job-error").textContent = "";
  let st;
  try {
    st = await api("GET", base() + "/" + id);
  } catch (e) {
    if (e.status === 401) { route(); return; }
    $("job-name").textContent = ""; $("job-error").textContent = e.message; return;
  }
  renderJob(st);
  await renderDeliveries(id, st).catch(e => { $("webhook-state").textContent = e.message; });
  if (["succeeded", "failed", "canceled"].includes(st.status)) return;
  const ctl = new AbortController();
  stopStream = () => ctl.abort();
  try {
    await follow(id, (name, data) => {
      if (name === "progress") renderProgress(data);
      else if (name === "image") addImage(data.prompt, data.index, data.url);
      else if (name === "done") { renderJob(data); }
    }, ctl.signal);
  } catch (e) {
    if (e.name !== "AbortError") $("job-error").textContent = e.message;
    return;
  }
  // The webhook is sent after the job ends; show its first attempts a moment later.
  const refresh = async (n) => {
    if (location.hash !== "#/job/" + id || n === 0) return;
    const s = await api("GET", base() + "/" + id);
    await renderDeliveries(id, s);
    if (s.webhook && s.webhook.state === "pending") setTimeout(() => refresh(n - 1), 500);
  };
  refresh(20).catch(() => {});
}

// --- playground ---
let promptCount = 0;
function addPrompt() {
  const f = $("prompt-tpl").content.firstElementChild.cloneNode(true);
  promptCount++;
  f.querySelector(".p-name").value = "prompt_" + promptCount;
  f.querySelector(".remove").addEventListener("click", () => { if ($("f-prompts").children.length > 1) f.remove(); });
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
      const p = { name: f.querySelector(".p-name").value, prompt: f.querySelector(".p-prompt").value,
        num_images: num(f, ".p-n"), width: num(f, ".p-w"), height: num(f, ".p-h") };
      const style = f.querySelector(".p-style").value;
      if (style) p.style = style;
      for (const [k, sel] of [["steps", ".p-steps"], ["guidance_scale", ".p-guidance"], ["seed", ".p-seed"]]) {
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
    $("new-error").textContent = e.message;
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
    await api("GET", base() + "?limit=1");
    if (!location.hash || location.hash === "#/login") location.hash = "#/jobs"; else route();
  } catch (e) {
    session.clear();
    $("login-error").textContent = e.message;
  }
});
$("refresh").addEventListener("click", () => jobsPage());
$("signout").addEventListener("click", ev => { ev.preventDefault(); session.clear(); $("key").value = ""; route(); });
$("more").addEventListener("click", () => jobsPage(true));
$("add-prompt").addEventListener("click", addPrompt);
$("new-form").addEventListener("submit", submitJob);
$("cancel").addEventListener("click", async () => {
  const id = location.hash.split("/").pop();
  try { renderJob(await api("DELETE", base() + "/" + id)); } catch (e) { $("job-error").textContent = e.message; }
});
window.addEventListener("hashchange", route);
route();
