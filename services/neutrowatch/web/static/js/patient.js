// The patient timeline page: reads the JSON API, draws the charts, fills the panels.
// Exposes window.neutrowatchChart / window.neutrowatchTemperatureChart and, on <body>,
// data-ready="true" (or "error") when done; the ANC canvas carries the drawn counts as data-*.

import { ancChart } from "./anc-chart.js";
import { badge, count, day, doseText, el, getJSON, gradeBadge, kindLabel, num, when } from "./format.js";
import { temperatureChart } from "./temperature-chart.js";
import { chartAlerts, xRange } from "./timeline-data.js";

const $ = (id) => document.getElementById(id);

async function allAlerts(key) {
  const out = [];
  let url = `/alerts?patient=${encodeURIComponent(key)}&limit=500`;
  while (url) {
    const page = await getJSON(url);
    out.push(...page.alerts);
    url = page.next || null;
  }
  return out;
}

function facts(timeline, state) {
  $("current-grade").replaceChildren(gradeBadge(state.current_grade));
  const last = state.last_anc;
  $("last-anc").replaceChildren(...(last ? [`${count(last)} cells/µL `, el("small", {}, day(last.collected_at))] : ["–"]));
  const l = timeline.grade_limits[timeline.grade_limits.length - 1];
  $("limits").replaceChildren(...(l ? [`${l.profile.toUpperCase()} profile `,
    el("small", {}, `normal ≥ ${num(l.normal)}${l.basis === "profile" ? "" : ` (${l.basis.replaceAll("_", " ")})`}`)] : ["–"]));
}

function patterns(state) {
  const items = state.detected_patterns.map((p) => el("li", {},
    el("span", { class: "kind" }, kindLabel(p.kind), " ", badge(p.severity)), p.summary));
  $("patterns").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "None detected.")]));
  const episodes = state.open_episodes.map((e) => el("li", {},
    el("strong", {}, `${e.kind === "neutropenia" ? "Neutropenia" : e.kind === "severe" ? "Severe" : "Agranulocytosis"}`),
    ` since ${day(e.started_at)} (${num(e.start_value)}), nadir ${num(e.nadir_value)} on ${day(e.nadir_at)}`,
    e.chronic ? " · chronic" : ""));
  $("episodes").replaceChildren(...(episodes.length ? episodes : [el("li", { class: "muted" }, "None open.")]));
}

function point(p) {
  return p ? count(p) : "–";
}

function ivigTable(timeline) {
  const rows = timeline.ivig_courses.map((c) => el("tr", {},
    el("td", { class: "nowrap" }, day(c.started_at)),
    el("td", { class: "nowrap" }, doseText(c)),
    el("td", { class: "num" }, c.interval_days === null ? "–" : `${num(c.interval_days)} d`),
    el("td", { class: "num" }, point(c.pre)),
    el("td", { class: "num" }, point(c.early)),
    el("td", { class: "num" }, c.nadir ? `${count(c.nadir)} (d${Math.round(c.nadir.days_after_start)})` : "–"),
    el("td", { class: "num" }, point(c.recovery_before_next)),
    el("td", { class: c.dip ? "dip-yes" : "dip-no" }, c.dip === null ? "–" : c.dip ? "yes" : "no")));
  $("ivig-table").tBodies[0].replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "8", class: "muted" }, "No IVIG infusions in the history."))]));
}

function alertTable(alerts) {
  const withdrawn = new Set(alerts.filter((a) => a.kind === "alert_retracted").map((a) => a.retracts_alert_id));
  const sorted = [...alerts].sort((a, b) => Date.parse(b.observed_at) - Date.parse(a.observed_at));
  const rows = sorted.map((a) => el("tr", { dataset: { alertId: a.alert_id } },
    el("td", {}, badge(a.severity)),
    el("td", { class: "nowrap" }, when(a.observed_at)),
    el("td", { class: "nowrap" }, kindLabel(a.kind), withdrawn.has(a.alert_id) ? " (retracted)" : ""),
    el("td", { class: "summary" }, a.summary)));
  $("patient-alerts").tBodies[0].replaceChildren(...(rows.length ? rows
    : [el("tr", {}, el("td", { colspan: "4", class: "muted" }, "No alerts."))]));
}

async function main() {
  const key = document.body.dataset.patientKey;
  const q = encodeURIComponent(key);
  try {
    const [timeline, state, alerts] = await Promise.all([
      getJSON(`/patients/${q}/anc`), getJSON(`/patients/${q}/state`), allAlerts(key)]);
    const shown = chartAlerts(alerts);
    const x = xRange(timeline, shown);
    facts(timeline, state);
    const { chart, counts } = ancChart($("anc-chart"), timeline, shown, x);
    window.neutrowatchChart = chart;
    window.neutrowatchCounts = counts;
    if (timeline.temperatures.length) {
      window.neutrowatchTemperatureChart = temperatureChart($("temp-chart"), timeline, x);
    } else {
      $("temp-box").hidden = true;
      $("temp-empty").hidden = false;
    }
    patterns(state);
    ivigTable(timeline);
    alertTable(alerts);
    document.body.dataset.ready = "true";
  } catch (err) {
    $("load-error").textContent = `Could not load this patient's data: ${err.message}`;
    $("load-error").hidden = false;
    document.body.dataset.ready = "error";
  }
}

main();
