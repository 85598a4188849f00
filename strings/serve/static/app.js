// The page of `strings serve`: send an image to POST /v1/read and draw the reading over it.
// No build step and nothing fetched from elsewhere: this file is all there is.
"use strict";

const $ = (id) => document.getElementById(id);
const LOW_CONFIDENCE = 0.5; // boxes below this are drawn in the warning colour
const STROKE_WIDTH = 9;     // pen width on the drawing pad, in canvas pixels

function options() {
  const form = new FormData();
  form.append("beam", $("beam").value || "0");
  if ($("amount").checked) {
    form.append("amount", "true");
    form.append("max_error", $("max-error").value);
    if ($("locale").value) form.append("locale", $("locale").value); // empty until /v1/info: the server's default
  }
  return form;
}

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", Boolean(isError));
}

async function read(blob, name) {
  const form = options();
  form.append("file", blob, name);
  const url = URL.createObjectURL(blob);
  setStatus(`Reading ${name}…`);
  document.body.dataset.state = "reading";
  try {
    const res = await fetch("/v1/read", { method: "POST", body: form });
    const body = await res.json();
    if (!res.ok) {
      throw new Error(body.error ? body.error.message : `HTTP ${res.status}`);
    }
    const record = body.results[0];
    if (record.error) {
      throw new Error(record.error.message);
    }
    await show(url, record);
    setStatus(`Read ${name} with ${body.model}.`);
    document.body.dataset.state = "done";
  } catch (err) {
    setStatus(`Could not read ${name}: ${err.message}`, true);
    document.body.dataset.state = "error";
  }
}

function loaded(img, url) {
  return new Promise((resolve, reject) => {
    img.onload = () => resolve();
    img.onerror = () => reject(new Error("the browser cannot show this image"));
    img.src = url;
  });
}

async function show(url, record) {
  const img = $("picture");
  $("stage").hidden = false;
  await loaded(img, url);
  const w = img.naturalWidth, h = img.naturalHeight;
  const boxes = $("boxes");
  boxes.replaceChildren();
  for (const d of record.digits) {
    const [x0, y0, x1, y1] = d.box;
    const el = document.createElement("div");
    el.className = "digit-box" + (d.confidence < LOW_CONFIDENCE ? " low" : "");
    // percentages of the image's own pixels: the boxes follow the image however it is scaled
    Object.assign(el.style, {
      left: `${(100 * x0) / w}%`, top: `${(100 * y0) / h}%`,
      width: `${(100 * (x1 - x0)) / w}%`, height: `${(100 * (y1 - y0)) / h}%`,
    });
    const label = document.createElement("span");
    label.textContent = `${d.char} ${d.confidence.toFixed(2)}`;
    el.appendChild(label);
    el.title = `digit ${d.char}, confidence ${d.confidence.toFixed(4)}`;
    boxes.appendChild(el);
  }
  $("reading").hidden = false;
  $("text").textContent = record.text || "(nothing read)";
  $("confidence").textContent = record.confidence.toFixed(4);
  const amount = record.amount;
  for (const el of document.querySelectorAll(".amount-row")) el.hidden = !amount;
  if (amount) {
    // Recognizer.amount_of(...).to_dict(): value is a string ("1500.00") or null where there is none
    const accepted = amount.status === "accept";
    $("amount-written").textContent = amount.written || "(nothing read)";
    $("amount-value").textContent = amount.value === null ? "—" : `${amount.value} (${amount.locale})`;
    const status = $("amount-status");
    status.textContent = accepted ? "accept" : "review";
    status.className = "amount-row " + (accepted ? "accepted" : "review");
    $("amount-reasons").textContent = amount.reasons.length ? amount.reasons.join("; ") : "none";
  }
}

// ------------------------------------------------------------------ upload and drop

$("file").addEventListener("change", (e) => {
  const f = e.target.files[0];
  if (f) read(f, f.name);
});
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const f = e.dataTransfer.files[0];
  if (f) read(f, f.name);
});

// ------------------------------------------------------------------ the drawing pad (mouse, pen or finger)

const pad = $("pad");
const ctx = pad.getContext("2d");
function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
}
clearPad();
let drawing = false;
function point(e) {
  const r = pad.getBoundingClientRect();
  return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
}
pad.addEventListener("pointerdown", (e) => {
  drawing = true;
  pad.setPointerCapture(e.pointerId);
  const [x, y] = point(e);
  ctx.beginPath();
  ctx.moveTo(x, y);
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const [x, y] = point(e);
  ctx.lineTo(x, y);
  ctx.strokeStyle = "#111";
  ctx.lineWidth = STROKE_WIDTH;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.stroke();
});
for (const end of ["pointerup", "pointercancel", "pointerleave"]) pad.addEventListener(end, () => { drawing = false; });
$("clear").addEventListener("click", clearPad);
$("read-drawing").addEventListener("click", () => pad.toBlob((blob) => read(blob, "drawing.png"), "image/png"));

// ------------------------------------------------------------------ what the server offers

fetch("/v1/info").then((r) => (r.ok ? r.json() : null)).then((info) => {
  if (!info) return;
  $("model-info").textContent = `Model: ${info.model}.`;
  $("beam").max = info.limits.max_beam;
  for (const name of info.locales) {
    $("locale").appendChild(new Option(name, name, name === info.default_locale, name === info.default_locale));
  }
  // every model reads amounts; these say why its amounts all go to review
  const why = [];
  if (!info.reads_separators) why.push("it reads no separators, so where the cents begin is unknown");
  if (!info.supports.operating_point) why.push("it has no fitted operating point");
  if (why.length) $("amount").parentElement.title = `Every amount of this model goes to review: ${why.join("; ")}.`;
}).catch(() => {});
