// The cad2program page: uploads a drawing to /v1/recognize and shows what came back. No framework and
// no build step; the overlay is drawn here as SVG (the image underneath, the primitives on top).
"use strict";

// The server-side overlay's bands (cad2program/outputs/draw.py CONFIDENCE_BANDS), best first.
const CONFIDENCE_BANDS = [
  { lowest: 0.9, colour: "rgb(0, 170, 60)", name: "high" },
  { lowest: 0.6, colour: "rgb(245, 140, 0)", name: "mid" },
  { lowest: -Infinity, colour: "rgb(225, 30, 30)", name: "low" },
];
const NO_CONFIDENCE = { colour: "rgb(20, 110, 240)", name: "none" };
const SVG_NS = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const state = { file: null, imageUrl: null, result: null };

function band(confidence) {
  if (typeof confidence !== "number") return NO_CONFIDENCE;
  return CONFIDENCE_BANDS.find((b) => confidence >= b.lowest);
}

function fmt(value) {
  return Number.isInteger(value) ? String(value) : String(Math.round(value * 10) / 10);
}

function stem(name) {
  const base = (name || "drawing").replace(/\.[^.]+$/, "");
  return base.replace(/[^\w.-]+/g, "_") || "drawing";
}

// ---------------------------------------------------------------------------------------------
// Status, errors, busy
// ---------------------------------------------------------------------------------------------

async function pollReadiness() {
  const pill = $("status");
  try {
    const response = await fetch("/readyz", { cache: "no-store" });
    const body = await response.json();
    if (response.ok) {
      pill.textContent = `model ready · batch ≤ ${body.max_batch}`;
      pill.className = "pill pill-ok";
      return;
    }
    pill.textContent = body.status || "warming up";
    pill.className = "pill pill-wait";
  } catch (err) {
    pill.textContent = "server unreachable";
    pill.className = "pill pill-bad";
  }
  setTimeout(pollReadiness, 2000);
}

function showError(message, heading = "Could not recognise the drawing") {
  const box = $("error");
  box.replaceChildren();
  const title = document.createElement("strong");
  title.textContent = heading;
  const text = document.createElement("p");
  text.textContent = message;
  box.append(title, text);
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

function setBusy(busy) {
  $("busy").hidden = !busy;
  $("recognise").classList.toggle("loading", busy);
  $("recognise").disabled = busy || !state.file;
}

// The server answers every mistake as {"error": {"message": ...}}; anything else is said as it is.
async function errorMessage(response) {
  const text = await response.text();
  try {
    const message = JSON.parse(text).error.message;
    if (message) return `${message} (HTTP ${response.status})`;
  } catch (_) { /* not the server's JSON: fall through */ }
  return `HTTP ${response.status} ${response.statusText}${text ? ": " + text.slice(0, 200) : ""}`;
}

// ---------------------------------------------------------------------------------------------
// Choosing a file
// ---------------------------------------------------------------------------------------------

function chooseFile(file) {
  if (!file) return;
  state.file = file;
  state.result = null;
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.imageUrl = URL.createObjectURL(file);
  const name = $("file-name");
  const size = file.size < 1024 ? `${file.size} bytes` : `${(file.size / 1024).toFixed(1)} KB`;
  name.textContent = `${file.name} · ${size}`;
  name.hidden = false;
  $("dropzone").classList.add("has-file");
  $("recognise").disabled = false;
  clearError();
  showResult(null);
  showPreview();
}

function showPreview() {
  // Until a recognition arrives the stage shows the plain image (at its own proportions).
  const img = new Image();
  img.alt = "the chosen drawing";
  img.className = "preview";
  img.onerror = () => {  // not an image the browser can show: the server will say what it makes of it
    img.remove();
    $("placeholder").textContent = "No preview: the browser cannot show this file as an image.";
    $("stage").classList.add("empty");
  };
  img.src = state.imageUrl;
  $("overlay").replaceChildren(img);
  $("stage").classList.remove("empty");
}

function wireFileInputs() {
  const zone = $("dropzone");
  $("file-input").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  for (const kind of ["dragenter", "dragover"]) {
    zone.addEventListener(kind, (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  }
  for (const kind of ["dragleave", "drop"]) {
    zone.addEventListener(kind, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    e.stopPropagation();  // the window's own drop handler would choose the file a second time
    chooseFile(e.dataTransfer.files[0]);
  });
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file-input").click(); }
  });
  // A drop anywhere else must not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => { e.preventDefault(); chooseFile(e.dataTransfer.files[0]); });
  window.addEventListener("paste", (e) => {
    const file = [...(e.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) chooseFile(file);
  });
}

// ---------------------------------------------------------------------------------------------
// Recognising
// ---------------------------------------------------------------------------------------------

async function recognise(event) {
  event.preventDefault();
  if (!state.file) return;
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  const width = $("sheet-width").value.trim();
  const height = $("sheet-height").value.trim();
  // Only what the user typed goes out: the server says which one is missing when only one is.
  if (width) form.append("sheet_width", width);
  if (height) form.append("sheet_height", height);
  clearError();
  setBusy(true);
  const started = performance.now();
  try {
    const response = await fetch("/v1/recognize", { method: "POST", body: form });
    if (!response.ok) {
      showError(await errorMessage(response));
      return;
    }
    const result = await response.json();
    result.elapsed_ms = performance.now() - started;
    state.result = result;
    showResult(result);
  } catch (err) {
    showError(`The server did not answer (${err.message}). Is 'cad2program serve' still running?`);
  } finally {
    setBusy(false);
  }
}

// ---------------------------------------------------------------------------------------------
// Showing a result
// ---------------------------------------------------------------------------------------------

function svg(tag, attributes) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attributes)) element.setAttribute(k, v);
  return element;
}

// One SVG element per primitive in the sheet's mm, y flipped (the sheet's y points up, SVG's down).
function shape(p, sheetHeight) {
  const Y = (y) => sheetHeight - y;
  switch (p.type) {
    case "line":
      return svg("line", { x1: p.x1, y1: Y(p.y1), x2: p.x2, y2: Y(p.y2) });
    case "rectangle":
      return svg("rect", {
        x: Math.min(p.x, p.x + p.width), y: Y(Math.max(p.y, p.y + p.height)),
        width: Math.abs(p.width), height: Math.abs(p.height),
      });
    case "circle":
      return svg("circle", { cx: p.x, cy: Y(p.y), r: Math.abs(p.radius) });
    case "arc":
      return svg("path", { d: arcPath(p, Y) });
    case "polyline": {
      const points = p.points.map(([x, y]) => `${x},${Y(y)}`).join(" ");
      return svg(p.closed ? "polygon" : "polyline", { points });
    }
    default:
      return null;
  }
}

function arcPath(arc, Y) {
  const r = Math.abs(arc.radius);
  let sweep = (((arc.end_angle - arc.start_angle) % 360) + 360) % 360;
  if (sweep === 0) sweep = 360;
  const at = (deg) => {
    const a = (deg * Math.PI) / 180;
    return `${arc.x + r * Math.cos(a)},${Y(arc.y + r * Math.sin(a))}`;
  };
  // Counter-clockwise on the sheet is counter-clockwise on screen: sweep-flag 0. A full turn is two halves.
  if (sweep >= 360) {
    const mid = arc.start_angle + 180;
    return `M${at(arc.start_angle)} A${r},${r} 0 0 0 ${at(mid)} A${r},${r} 0 0 0 ${at(arc.start_angle)}`;
  }
  return `M${at(arc.start_angle)} A${r},${r} 0 ${sweep > 180 ? 1 : 0} 0 ${at(arc.start_angle + sweep)}`;
}

function values(p) {
  switch (p.type) {
    case "line": return `(${fmt(p.x1)}, ${fmt(p.y1)}) → (${fmt(p.x2)}, ${fmt(p.y2)})`;
    case "rectangle": return `${fmt(p.width)} × ${fmt(p.height)} at (${fmt(p.x)}, ${fmt(p.y)})`;
    case "circle": return `Ø${fmt(2 * p.radius)} at (${fmt(p.x)}, ${fmt(p.y)})`;
    case "arc": return `R${fmt(p.radius)} at (${fmt(p.x)}, ${fmt(p.y)}), ${fmt(p.start_angle)}° → ${fmt(p.end_angle)}°`;
    case "polyline":
      return `${p.points.length} pts${p.closed ? " closed" : ""}: ` +
        p.points.map(([x, y]) => `(${fmt(x)}, ${fmt(y)})`).join(" ");
    default: return JSON.stringify(p);
  }
}

function drawOverlay(result) {
  const { width, height } = result.sheet;
  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`, role: "img", class: "overlay",
    "aria-label": `${result.primitives.length} recognised primitives over the drawing`,
  });
  // The image spans the sheet exactly (the contract), so it is stretched onto it, never letterboxed.
  root.style.aspectRatio = `${width} / ${height}`;
  root.style.width = `min(100%, calc(68vh * ${width / height}))`;
  root.append(svg("image", { href: state.imageUrl, x: 0, y: 0, width, height, preserveAspectRatio: "none" }));
  const shapes = svg("g", { class: "shapes" });
  result.primitives.forEach((p, i) => {
    const element = shape(p, height);
    if (!element) return;
    const b = band(p.confidence);
    element.setAttribute("stroke", b.colour);
    element.setAttribute("data-index", i);
    element.setAttribute("data-band", b.name);
    element.setAttribute("class", "shape");
    const title = svg("title", {});
    title.textContent = `#${i + 1} ${p.type} ${values(p)}` +
      (typeof p.confidence === "number" ? ` · confidence ${p.confidence.toFixed(2)}` : "");
    element.append(title);
    shapes.append(element);
  });
  root.append(shapes);
  $("overlay").replaceChildren(root);
}

function fillTable(primitives) {
  const body = $("primitives").tBodies[0];
  body.replaceChildren();
  if (!primitives.length) {
    const row = body.insertRow();
    row.className = "none";
    const cell = row.insertCell();
    cell.colSpan = 4;
    cell.className = "muted";
    cell.textContent = "The model found no primitives.";
    return;
  }
  primitives.forEach((p, i) => {
    const b = band(p.confidence);
    const row = body.insertRow();
    row.dataset.index = i;
    row.insertCell().textContent = i + 1;
    const type = row.insertCell();
    type.innerHTML = `<i class="dot" style="background:${b.colour}"></i>`;
    type.append(p.type);
    row.insertCell().textContent = values(p);
    const conf = row.insertCell();
    conf.className = "confidence";
    if (typeof p.confidence === "number") {
      conf.innerHTML = `<span class="bar"><span style="width:${(p.confidence * 100).toFixed(0)}%;background:${b.colour}"></span></span>`;
      conf.append(p.confidence.toFixed(2));
    } else {
      conf.textContent = "–";
    }
  });
}

// Hovering a table row or a shape lights up both.
function highlight(index) {
  document.querySelectorAll(".hot").forEach((e) => e.classList.remove("hot"));
  if (index === null || index === undefined) return;
  document.querySelectorAll(`[data-index="${index}"]`).forEach((e) => e.classList.add("hot"));
}

function wireHighlight() {
  for (const id of ["overlay", "primitives"]) {
    $(id).addEventListener("mouseover", (e) => highlight(e.target.closest("[data-index]")?.dataset.index));
    $(id).addEventListener("mouseleave", () => highlight(null));
  }
}

function showResult(result) {
  const has = Boolean(result);
  for (const id of ["download-dxf", "download-json", "copy"]) $(id).disabled = !has;
  $("problems").hidden = true;
  if (!has) {
    $("program").innerHTML = '<span class="muted">No program yet.</span>';
    $("summary").textContent = "";
    $("count").textContent = "";
    fillTable([]);
    $("primitives").tBodies[0].rows[0].cells[0].textContent = "No primitives yet.";
    return;
  }
  drawOverlay(result);
  $("program").textContent = result.program || "# the model found no primitives";
  fillTable(result.primitives);
  const n = result.primitives.length;
  $("count").textContent = `${n} found`;
  $("summary").textContent =
    `sheet ${fmt(result.sheet.width)} × ${fmt(result.sheet.height)} mm · ${n} primitive${n === 1 ? "" : "s"}` +
    ` · ${Math.round(result.elapsed_ms)} ms`;
  showProblems(result.problems || []);
}

// The validator's findings, folded: a model early in training can have dozens.
function showProblems(problems) {
  const box = $("problems");
  if (!problems.length) return;
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = `The program has ${problems.length} problem${problems.length === 1 ? "" : "s"}`;
  const list = document.createElement("ul");
  for (const problem of problems) list.append(Object.assign(document.createElement("li"), { textContent: problem }));
  details.append(summary, list);
  box.replaceChildren(details);
  box.hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Copy and downloads
// ---------------------------------------------------------------------------------------------

async function copyProgram() {
  const text = state.result ? state.result.program : "";
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {  // no clipboard permission (plain http on another host): select the text instead
    const range = document.createRange();
    range.selectNodeContents($("program"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand("copy");
  }
  const button = $("copy");
  button.textContent = "Copied ✓";
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
}

function save(blob, filename) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

function downloadJson() {
  const r = state.result;
  // One line of the contract's dataset/prediction format, confidences kept alongside.
  const record = { image: state.file.name, sheet: r.sheet, primitives: r.primitives, program: r.program };
  save(new Blob([JSON.stringify(record, null, 2) + "\n"], { type: "application/json" }),
    `${stem(state.file.name)}.json`);
}

async function downloadDxf() {
  const r = state.result;
  clearError();
  try {
    const response = await fetch("/v1/export/dxf", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ primitives: r.primitives, sheet: r.sheet }),
    });
    if (!response.ok) {
      showError(await errorMessage(response), "DXF export failed");
      return;
    }
    save(await response.blob(), `${stem(state.file.name)}.dxf`);
  } catch (err) {
    showError(`The server did not answer (${err.message})`, "DXF export failed");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  wireFileInputs();
  wireHighlight();
  $("form").addEventListener("submit", recognise);
  $("copy").addEventListener("click", copyProgram);
  $("download-json").addEventListener("click", downloadJson);
  $("download-dxf").addEventListener("click", downloadDxf);
  pollReadiness();
});
