// The search page: every action is one call to the JSON API of the same server.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "status error" : "status";
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

async function call(path, options) {
  const started = performance.now();
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  body.roundTripMs = performance.now() - started;
  return body;
}

function card(hit) {
  const c = element("article", "card");
  c.dataset.id = hit.id;
  const meta = hit.metadata || {};
  if (info && info.thumbnails && meta.image) {
    const img = element("img");
    img.src = "/images/" + meta.image.split("/").map(encodeURIComponent).join("/");
    img.alt = meta.text || "item " + hit.id;
    c.append(img);
  } else {
    c.append(element("div", "noimg", hit.modality + " #" + hit.id));
  }
  const line = element("div", "meta");
  line.append(element("span", "id", "#" + hit.id + " · " + hit.modality));
  line.append(element("span", "distance", "Hamming " + hit.distance));
  c.append(line);
  if (meta.text) c.append(element("div", "caption", meta.text));
  const chips = element("div", "chips");
  for (const label of meta.labels || []) chips.append(element("span", "chip", String(label)));
  c.append(chips);
  const more = element("button", "more", "more like this");
  more.type = "button";
  more.addEventListener("click", () => search("/search/item",
    jsonRequest({ id: hit.id, modality: hit.modality, k: k() }), "item #" + hit.id));
  c.append(more);
  return c;
}

function k() { return Math.max(1, parseInt($("k").value, 10) || 12); }

function jsonRequest(body) {
  return { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
}

async function search(path, options, what) {
  setStatus("searching…");
  try {
    const result = await call(path, options);
    const grid = $("results");
    grid.replaceChildren(...result.hits.map(card));
    let text = result.hits.length + " results for " + what + " in " + result.took_ms.toFixed(1) +
      " ms (server), " + result.roundTripMs.toFixed(0) + " ms round trip";
    if (result.note) text += " — " + result.note;
    setStatus(text);
  } catch (err) {
    setStatus(err.message, true);
  }
}

$("text-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text-query").value;
  search("/search/text", jsonRequest({ text: text, k: k() }), "“" + text + "”");
});

$("image-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("image-query").files[0];
  if (!file) { setStatus("choose an image first", true); return; }
  const form = new FormData();
  form.append("file", file);
  form.append("k", String(k()));
  search("/search/image", { method: "POST", body: form }, file.name);
});

$("item-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = parseInt($("item-query").value, 10);
  if (Number.isNaN(id)) { setStatus("enter an item id", true); return; }
  const modality = $("item-modality").value;
  search("/search/item", jsonRequest({ id: id, modality: modality, k: k() }), "item #" + id);
});

async function loadInfo() {
  try {
    info = await call("/info");
    const index = info.index || {};
    const dataset = index.dataset || {};
    $("k").max = info.limits.max_k;
    $("info").textContent = info.method + ", " + info.bits + " bits · " + (index.store || "?") + " index of " +
      index.size + " entries (" + (index.modalities || []).join("+") + ")" +
      (dataset.name ? " from " + dataset.name + "/" + dataset.split : "") +
      " · encoder: " + (info.encoder ? "CLIP" : "none (text and image queries off)");
    if (!info.encoder) {
      for (const id of ["text-query", "text-search", "image-query", "image-search"]) $(id).disabled = true;
    }
  } catch (err) {
    setStatus("cannot read /info: " + err.message, true);
  }
}

loadInfo();
