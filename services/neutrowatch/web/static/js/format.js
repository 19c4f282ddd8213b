// Words and number/time formats shared by the pages (neutrowatch/web/labels.py has the same words).

export const KIND = {
  grade_change: "Grade change", severe_neutropenia: "Severe neutropenia", agranulocytosis: "Agranulocytosis",
  rapid_decline: "Rapid decline", recovery: "Recovery", chronic_neutropenia: "Chronic neutropenia",
  cyclic_neutropenia_suspected: "Cyclic neutropenia suspected",
  post_ivig_neutropenia_pattern: "Post-IVIG neutropenia pattern", ivig_baseline_missing: "IVIG baseline missing",
  expected_dip: "Expected dip",
  drug_associated_neutropenia_suspected: "Drug-associated neutropenia suspected",
  febrile_neutropenia: "Febrile neutropenia", alert_retracted: "Alert retracted",
};

export const GRADE = {
  normal: "Normal", mild: "Mild", moderate: "Moderate", severe: "Severe", agranulocytosis: "Agranulocytosis",
};

export const kindLabel = (code) => KIND[code] || code.replaceAll("_", " ");

const number = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
export const num = (v) => (v === null || v === undefined ? "–" : number.format(v));

const dateTime = new Intl.DateTimeFormat("en-GB", {
  day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
});
const dateOnly = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short", year: "numeric" });

export const when = (iso) => (iso ? dateTime.format(new Date(iso)) : "–");
export const day = (iso) => (iso ? dateOnly.format(new Date(iso)) : "–");

// A count as reported: "<100" when the lab gave it as below (or above) a figure.
export const count = (o) => `${o.comparator || ""}${num(o.value)}`;

// The dose of an administration or course as given: per kg (dose_mg_per_kg) or a mass (dose_mg).
export function doseText({ dose_mg_per_kg: perKg, dose_mg: mass }) {
  const mg = (v, unit) => (v >= 1000 ? `${num(v / 1000)} g${unit}` : `${num(v)} mg${unit}`);
  if (perKg !== null && perKg !== undefined) return mg(perKg, "/kg");
  if (mass !== null && mass !== undefined) return mg(mass, "");
  return "dose not given";
}

// Split a long sentence into tooltip lines of at most `width` characters.
export function wrap(text, width = 64) {
  const lines = [];
  let line = "";
  for (const word of String(text).split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

// Build an element: el("td", {class: "num"}, "text", childNode, ...). Text is never parsed as HTML.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const badge = (severity) => el("span", { class: `badge sev-${severity}` }, severity);
export const gradeBadge = (grade) =>
  grade ? el("span", { class: `grade grade-${grade}` }, GRADE[grade] || grade) : el("span", { class: "muted" }, "–");

export async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) throw new Error(`${url.split("?")[0]} answered ${response.status}`);
  return response.json();
}
