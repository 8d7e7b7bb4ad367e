// brushwork studio: the page. Plain JavaScript, no libraries: it builds its form from
// /api/config, uploads files as raw bodies, follows /api/events (server-sent events) and
// draws the running job, the queue and the gallery from each snapshot.
"use strict";

const $ = (id) => document.getElementById(id);
const session = (crypto.randomUUID && crypto.randomUUID()) ||
  String(Math.random()).slice(2) + String(Date.now());
const state = { config: null, mode: "artistic", content: null, styles: [],
  labels: { content_mask: null, style_mask: null }, model: null, current: null,
  shown: new Set(), told: new Set() };

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function answer(response) {
  const body = await response.json().catch(() => ({ error: `the studio answered ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `the studio answered ${response.status}`);
  return body;
}

async function upload(file, kind = "image") {
  showError("");
  const query = new URLSearchParams({ name: file.name, kind });
  try {
    return await answer(await fetch(`/api/uploads?${query}`, { method: "POST", body: file }));
  } catch (err) {
    showError(err.message);
    return null;
  }
}

function example(name) {
  return { ref: `example:${name}`, name, url: `/examples/${name}` };
}

function setContent(item) {
  state.content = item;
  $("content-thumb").src = item.url;
  $("content-thumb").hidden = false;
  $("content-name").textContent = item.name;
  for (const img of $("content-examples").children) {
    img.classList.toggle("chosen", item.ref === `example:${img.dataset.name}`);
  }
}

function toggleStyle(item) {
  const at = state.styles.findIndex((s) => s.ref === item.ref);
  if (at >= 0) state.styles.splice(at, 1);
  else if (state.mode === "photo") state.styles = [item];
  else state.styles.push(item);
  drawStyles();
}

function drawStyles() {
  $("styles-chosen").replaceChildren(...state.styles.map((s) =>
    el("img", { src: s.url, alt: s.name, title: `${s.name} (click to remove)`,
      className: "chosen-style", onclick: () => toggleStyle(s) })));
  const chosen = new Set(state.styles.map((s) => s.ref));
  for (const img of $("style-examples").children) {
    img.classList.toggle("chosen", chosen.has(`example:${img.dataset.name}`));
  }
}

function field(spec, value) {
  const id = `setting-${spec.name}`;
  const input = spec.kind === "choice"
    ? el("select", { id, name: spec.name }, ...spec.choices.map((c) => el("option", { value: c, textContent: c })))
    : el("input", { id, name: spec.name, type: "text", inputMode: "decimal" });
  input.value = value === null || value === undefined ? "" : Array.isArray(value) ? value.join(",") : String(value);
  return el("div", { className: "setting" }, el("label", { htmlFor: id, textContent: spec.label }),
    input, el("span", { className: "help", textContent: spec.help }));
}

function drawSettings() {
  const mode = state.config.modes.find((m) => m.name === state.mode);
  $("main-settings").replaceChildren(...mode.fields.filter((f) => f.main).map((f) => field(f, mode.defaults[f.name])));
  $("advanced-settings").replaceChildren(...mode.fields.filter((f) => !f.main).map((f) => field(f, mode.defaults[f.name])));
  $("styles-box").hidden = state.mode === "fast";
  $("labels-box").hidden = state.mode !== "photo";
  $("model-box").hidden = state.mode !== "fast";
  $("styles-legend").textContent = state.mode === "photo" ? "Reference photo" : "Styles";
  if (state.mode === "photo" && state.styles.length > 1) state.styles = state.styles.slice(0, 1);
  drawStyles();
}

function settings() {
  const values = {};
  for (const input of document.querySelectorAll("#main-settings [name], #advanced-settings [name]")) {
    values[input.name] = input.value.trim();
  }
  return values;
}

async function run() {
  showError("");
  const job = { session, mode: state.mode, content: state.content && state.content.ref,
    styles: state.styles.map((s) => s.ref), model: state.model || $("model").value,
    content_mask: state.labels.content_mask, style_mask: state.labels.style_mask,
    settings: settings() };
  try {
    await answer(await fetch("/api/jobs", { method: "POST", body: JSON.stringify(job),
      headers: { "Content-Type": "application/json" } }));
  } catch (err) {
    showError(err.message);
  }
}

async function stop(id) {
  await fetch(`/api/jobs/${id}/stop`, { method: "POST" }).catch(() => null);
}

function seconds(s) {
  if (s === null || s === undefined) return "ETA …";
  return s < 60 ? `ETA ${Math.ceil(s)} s` : `ETA ${Math.floor(s / 60)} min ${Math.ceil(s % 60)} s`;
}

function drawCurrent(jobs) {
  const running = jobs.find((j) => j.status === "running" && j.session === session) ||
    jobs.find((j) => j.status === "running");
  state.current = running ? running.id : null;
  $("current").hidden = !running;
  $("idle").hidden = !!running;
  if (!running) return;
  if (running.preview && $("preview").dataset.n !== `${running.id}:${running.previews}`) {
    $("preview").src = running.preview;
    $("preview").dataset.n = `${running.id}:${running.previews}`;
  }
  $("status").textContent = `${running.title} on ${running.device}`;
  $("step").textContent = running.step;
  $("total").textContent = running.total;
  $("eta").textContent = seconds(running.eta);
  $("losses").textContent = Object.entries(running.losses)
    .map(([k, v]) => `${k} ${Number(v).toPrecision(3)}`).join(" · ");
}

function drawQueue(jobs) {
  $("queue").replaceChildren(...jobs.filter((j) => j.status === "queued").map((j) =>
    el("li", { className: "queued" }, `${j.title}: ${j.inputs.join(", ")} `,
      el("button", { className: "quiet", textContent: "remove", onclick: () => stop(j.id) }))));
}

function card(job) {
  const name = job.result.split("/").pop();
  const command = el("code", { className: "command", textContent: job.command });
  const copy = el("button", { className: "quiet", textContent: "copy command" });
  copy.onclick = () => {
    const done = () => { copy.textContent = "copied"; };
    if (navigator.clipboard) navigator.clipboard.writeText(job.command).then(done, () => null);
    getSelection().selectAllChildren(command);
  };
  const use = el("button", { className: "quiet use-content", textContent: "use as content" });
  use.onclick = () => setContent({ ref: job.result.replace(/^\/files\//, ""), name, url: job.result });
  const status = job.status === "stopped" ? ` (stopped at step ${job.step})` : "";
  return el("div", { className: "result", id: `result-${job.id}` },
    el("img", { src: job.result, alt: name }),
    el("p", {}, `${job.title}${status}: ${job.inputs.join(", ")}`),
    el("div", { className: "actions" },
      el("a", { href: job.result, download: name, className: "download", textContent: "download" }),
      use, copy),
    command,
    el("details", {}, el("summary", { textContent: "settings" }),
      el("pre", { className: "settings", textContent: JSON.stringify(job.settings, null, 1) })));
}

function drawGallery(jobs) {
  for (const job of jobs) {
    if (job.result && !state.shown.has(job.id)) {
      state.shown.add(job.id);
      $("gallery").prepend(card(job));
    }
    if (job.status === "failed" && job.session === session && !state.told.has(job.id)) {
      state.told.add(job.id);
      showError(job.error);
    }
  }
}

function follow() {
  const events = new EventSource(`/api/events?session=${encodeURIComponent(session)}`);
  events.onerror = () => { $("connection").textContent = "reconnecting…"; };
  events.onmessage = (message) => {  // the first comes at once: "connected" = all drawn
    const jobs = JSON.parse(message.data);
    drawCurrent(jobs);
    drawQueue(jobs);
    drawGallery(jobs);
    $("connection").textContent = "connected";
  };
}

function dropZone(zone, take) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    take([...e.dataTransfer.files]);
  });
}

async function takeContent(files) {
  const item = files.length && await upload(files[0]);
  if (item) setContent(item);
}

async function takeStyles(files) {
  for (const file of files) {
    const item = await upload(file);
    if (item) toggleStyle(item);
  }
}

function label(key) {
  const input = $(`${key.replace("_", "-")}-file`);
  input.onchange = async () => {
    const item = input.files.length && await upload(input.files[0]);
    state.labels[key] = item ? item.ref : null;
    $(`${key.replace("_", "-")}-name`).textContent = item ? item.name : "";
  };
}

async function start() {
  state.config = await answer(await fetch("/api/config"));
  for (const name of state.config.examples) {
    $("content-examples").append(el("img", { src: `/examples/${name}`, alt: name, title: name,
      onclick: () => setContent(example(name)) }));
    $("style-examples").append(el("img", { src: `/examples/${name}`, alt: name, title: name,
      onclick: () => toggleStyle(example(name)) }));
    $("content-examples").lastChild.dataset.name = name;
    $("style-examples").lastChild.dataset.name = name;
  }
  $("model").replaceChildren(...state.config.models.map((m) => el("option", { value: m, textContent: m })));
  for (const radio of document.querySelectorAll("input[name=mode]")) {
    radio.onchange = () => { state.mode = radio.value; drawSettings(); };
  }
  $("content-file").onchange = () => takeContent([...$("content-file").files]);
  $("style-file").onchange = () => takeStyles([...$("style-file").files]);
  $("model-file").onchange = async () => {
    const item = $("model-file").files.length && await upload($("model-file").files[0], "model");
    state.model = item ? item.ref : null;
  };
  $("model").onchange = () => { state.model = null; };
  label("content_mask");
  label("style_mask");
  dropZone($("content-drop"), takeContent);
  dropZone($("style-drop"), takeStyles);
  $("run").onclick = run;
  $("stop").onclick = () => state.current && stop(state.current);
  state.mode = document.querySelector("input[name=mode]:checked").value;
  drawSettings();
  follow();
}

start().catch((err) => showError(err.message));
