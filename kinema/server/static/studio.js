// kinema studio: a page over the HTTP API (no build step, nothing fetched from elsewhere).
"use strict";

const $ = (id) => document.getElementById(id);
const jobs = new Map();      // id -> job (as the API returns it)
const following = new Set(); // ids with an open event stream
const blobs = new Map();     // content URL -> object URL
const MODES = { text: "generate", image: "generate", extend: "extend", interpolate: "interpolate", edit: "edit" };
const FILES = { image: ["image"], extend: ["video"], interpolate: ["first", "last"], edit: ["video", "mask"], text: [] };
const NUMBERS = ["width", "height", "frames", "seconds", "seed", "steps", "guidance", "strength"];
const ACTIVE = new Set(["queued", "running"]);
const lags = window.kinemaLags = [];  // seconds from a sampling step on the server to this page

function auth(extra = {}) {
  const key = $("key").value.trim();
  return key ? { ...extra, Authorization: "Bearer " + key } : extra;
}

async function api(method, path, body) {
  const init = { method, headers: auth() };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error((data.error && data.error.message) || `${res.status} ${res.statusText}`);
  return data;
}

function say(text, ok = false) { $("message").textContent = text; $("message").className = ok ? "ok" : ""; }

function mode() { return document.querySelector("input[name=mode]:checked").value; }

function showMode() {
  const m = mode();
  document.querySelectorAll("[data-modes]").forEach((el) => { el.hidden = !el.dataset.modes.split(" ").includes(m); });
  $("submit").textContent = { text: "Generate", image: "Animate", extend: "Extend", interpolate: "Interpolate", edit: "Edit" }[m];
}

async function upload(name) {
  const input = $(name);
  if (!input.files.length) throw new Error(`choose a file for "${name}"`);
  const form = new FormData();
  form.append("file", input.files[0]);
  try { return (await api("POST", "/v1/uploads", form)).id; }
  catch (e) { throw new Error(`upload of ${input.files[0].name} refused: ${e.message}`); }
}

async function submit(ev) {
  ev.preventDefault();
  say("");
  const m = mode();
  const body = { mode: MODES[m], prompt: $("prompt").value };
  for (const n of NUMBERS) {
    const el = $(n);
    if (el.value !== "" && !el.closest("[hidden]")) body[n] = Number(el.value);
  }
  $("submit").disabled = true;
  try {
    for (const name of FILES[m]) {
      if (name === "mask" && !$("mask").files.length) continue;
      body[name] = await upload(name);
    }
    const job = await api("POST", "/v1/videos", body);
    track(job);
    say(`queued ${job.id} (seed ${job.seed})`, true);
  } catch (e) {
    say(e.message);
  } finally {
    $("submit").disabled = false;
  }
}

function track(job) {
  jobs.set(job.id, job);
  render();
  if (ACTIVE.has(job.status)) follow(job.id);
}

async function follow(id) {
  if (following.has(id)) return;
  following.add(id);
  try {
    const res = await fetch(`/v1/videos/${id}/events`, { headers: auth() });
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const chunk = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const type = (chunk.match(/^event: (.*)$/m) || [])[1];
        const data = (chunk.match(/^data: (.*)$/m) || [])[1];
        if (!type || !data) continue;
        const event = JSON.parse(data);
        if (type === "progress" && event.at) lags.push(Date.now() / 1000 - event.at);  // step to page, seconds
        const job = jobs.get(id);
        if (!job) continue;
        job.progress = event.progress ?? job.progress;
        if (type === "status") job.status = event.status;
        update(job);
      }
    }
  } catch (e) {
    /* the stream ended (server restart, network): the job is fetched again below */
  } finally {
    following.delete(id);
  }
  try { track(await api("GET", `/v1/videos/${id}`)); } catch (e) { jobs.delete(id); render(); }
}

function update(job) {
  const li = document.querySelector(`#queue li[data-id="${job.id}"]`);
  if (li && ACTIVE.has(job.status)) {
    li.querySelector("progress").value = job.progress;
    li.querySelector(".pct").textContent = `${job.status} ${Math.round(job.progress * 100)}%`;
  } else {
    render();
  }
}

function describe(job) {
  const r = job.request || {};
  const parts = [r.mode || "generate"];
  if (job.result) parts.push(`${job.result.width}x${job.result.height}`, `${job.result.frames} frames`, `${job.result.fps} fps`);
  if (r.steps) parts.push(`${r.steps} steps`);
  if (r.guidance !== undefined) parts.push(`guidance ${r.guidance}`);
  parts.push(`seed ${job.seed}`);
  const marks = job.result && job.result.provenance;
  if (marks) parts.push([marks.watermark ? `watermark #${marks.watermark.serial}` : "", marks.manifest && marks.manifest.length
    ? "signed (C2PA)" : ""].filter(Boolean).join(", ") || "unmarked");
  return parts.join(" · ");
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") node.addEventListener("click", v);
    else if (k in node && k !== "dataset") node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function objectUrl(url) {
  if (!blobs.has(url)) {
    const res = await fetch(url, { headers: auth() });
    if (!res.ok) throw new Error(res.statusText);
    blobs.set(url, URL.createObjectURL(await res.blob()));
  }
  return blobs.get(url);
}

async function cancel(id) {
  try { track(await api("DELETE", `/v1/videos/${id}`)); say(`cancelled ${id}`, true); }
  catch (e) { say(e.message); }
}

async function remove(id) {
  try { await api("DELETE", `/v1/videos/${id}`); jobs.delete(id); render(); }
  catch (e) { say(e.message); }
}

async function again(job) {
  const body = { ...job.request, seed: job.seed };
  for (const [name, value] of Object.entries(body.inputs || {})) body[name] = value;
  delete body.inputs;
  try { track(await api("POST", "/v1/videos", body)); say("queued again with the same seed", true); }
  catch (e) { say(e.message); }
}

function render() {
  const list = [...jobs.values()].sort((a, b) => b.created_at - a.created_at);
  const queue = $("queue");
  queue.replaceChildren(...list.filter((j) => ACTIVE.has(j.status)).map((j) =>
    el("li", { "data-id": j.id },
      el("span", { className: "prompt" }, j.request.prompt || `(${j.request.mode})`),
      el("button", { className: "small cancel", type: "button", onclick: () => cancel(j.id) }, "Cancel"),
      el("progress", { max: 1, value: j.progress }),
      el("span", { className: "pct muted" }, `${j.status} ${Math.round(j.progress * 100)}%`))));
  $("queue-empty").hidden = queue.children.length > 0;
  const gallery = $("gallery");
  const cards = list.filter((j) => !ACTIVE.has(j.status)).map((j) => {
    const card = el("div", { className: "card", "data-id": j.id, "data-status": j.status });
    if (j.status === "succeeded") {
      const video = el("video", { controls: true, loop: true, muted: true, autoplay: true, playsInline: true });
      const sheet = el("img", { alt: "contact sheet" });
      objectUrl(j.outputs.video).then((u) => { video.src = u; }).catch(() => {});
      objectUrl(j.outputs.sheet).then((u) => { sheet.src = u; }).catch(() => {});
      card.append(video, sheet);
    } else {
      card.append(el("p", { className: "failed" }, j.status === "failed" ? `failed: ${j.error ? j.error.message : ""}` : j.status));
    }
    card.append(el("p", {}, j.request.prompt || ""), el("p", { className: "meta" }, describe(j)),
      el("div", { className: "actions" },
        el("button", { className: "small again", type: "button", onclick: () => again(j) }, "Make again"),
        el("button", { className: "small delete", type: "button", onclick: () => remove(j.id) }, "Delete")));
    return card;
  });
  // keep cards that exist (their videos keep playing); add new ones in order
  const existing = new Map([...gallery.children].map((c) => [c.dataset.id + c.dataset.status, c]));
  gallery.replaceChildren(...cards.map((c) => existing.get(c.dataset.id + c.dataset.status) || c));
}

async function start() {
  $("form").addEventListener("submit", submit);
  document.querySelectorAll("input[name=mode]").forEach((r) => r.addEventListener("change", showMode));
  $("key").value = localStorage.getItem("kinema-key") || "";
  $("key").addEventListener("change", () => { localStorage.setItem("kinema-key", $("key").value.trim()); load(); });
  showMode();
  try {
    const limits = await api("GET", "/v1/limits");
    $("key-row").hidden = !limits.keys;
  } catch (e) { say(e.message); }
  load();
}

async function load() {
  try {
    const page = await api("GET", "/v1/videos?limit=50");
    page.data.forEach(track);
  } catch (e) { say(e.message); }
}

start();
