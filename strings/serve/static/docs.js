// /docs: every operation of /openapi.json with its summary, options and answers; no libraries.
"use strict";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function optionsOf(op) {
  const content = (op.requestBody && op.requestBody.content) || {};
  const rows = [];
  for (const [kind, body] of Object.entries(content)) {
    for (const [name, prop] of Object.entries((body.schema && body.schema.properties) || {})) {
      rows.push([kind, name, prop.type || (prop.anyOf || []).map((p) => p.type).join(" | "), prop.description || ""]);
    }
  }
  return rows;
}

fetch("/openapi.json").then((r) => r.json()).then((spec) => {
  const root = document.getElementById("api");
  root.appendChild(el("p", `${spec.info.title} ${spec.info.version}: ${spec.info.description || ""}`));
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const sec = el("section", undefined, "operation");
      sec.appendChild(el("h2", `${method.toUpperCase()} ${path}`));
      if (op.description || op.summary) sec.appendChild(el("p", op.description || op.summary));
      const rows = optionsOf(op);
      if (rows.length) {
        const table = el("table");
        const head = table.insertRow();
        for (const h of ["body", "name", "type", "meaning"]) head.appendChild(el("th", h));
        for (const row of rows) {
          const tr = table.insertRow();
          for (const cell of row) tr.insertCell().textContent = cell;
        }
        sec.appendChild(table);
      }
      const answers = Object.entries(op.responses || {}).map(([code, r]) => `${code} ${r.description || ""}`);
      sec.appendChild(el("p", `Answers: ${answers.join("; ")}`, "muted"));
      root.appendChild(sec);
    }
  }
}).catch((err) => { document.getElementById("api").textContent = `Could not load /openapi.json: ${err}`; });
