// From the JSON API's answers to what the charts draw (pure functions, no DOM).

const DAY = 86400000;
// Rows of the alert strip (below the ANC plot, 0..1).
export const ALERT_ROWS = [0.2, 0.45, 0.7, 0.92];

export const t = (iso) => Date.parse(iso);

// Alerts drawn on the chart: not the retraction notices, nor the alerts they withdrew.
export function chartAlerts(alerts) {
  const withdrawn = new Set(alerts.filter((a) => a.kind === "alert_retracted").map((a) => a.retracts_alert_id));
  return alerts.filter((a) => a.kind !== "alert_retracted" && !withdrawn.has(a.alert_id));
}

// One x range for both charts, so that they line up: every dated thing, padded.
export function xRange(timeline, alerts) {
  const times = [
    ...timeline.anc.map((o) => t(o.collected_at)),
    ...timeline.administrations.map((a) => t(a.started_at)),
    ...timeline.temperatures.map((o) => t(o.collected_at)),
    ...alerts.map((a) => t(a.observed_at)),
  ].filter(Number.isFinite);
  if (!times.length) return { min: Date.now() - 7 * DAY, max: Date.now() };
  const lo = Math.min(...times), hi = Math.max(...times);
  const pad = Math.max(2 * DAY, (hi - lo) * 0.03);
  return { min: lo - pad, max: hi + pad };
}

const NICE = [200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000];

// Log axis bounds: a floor for counts of 0 (not drawable on a log axis) and room above normal.
export function yRange(timeline) {
  const values = timeline.anc.map((o) => o.value);
  const positive = values.filter((v) => v > 0);
  const lowest = positive.length ? Math.min(...positive) : 100;
  const min = values.some((v) => v <= 0) || lowest < 60 ? 10 : 50;
  const normal = Math.max(...timeline.grade_limits.map((l) => l.normal), 0);
  const want = Math.max(positive.length ? Math.max(...positive) * 1.4 : 0, normal * 2);
  return { min, max: NICE.find((n) => n >= want) || want };
}

export function ancPoints(timeline, floor) {
  return timeline.anc.map((o) => ({ x: t(o.collected_at), y: Math.max(o.value, floor), obs: o }));
}

export function administrationPoints(timeline, role) {
  return timeline.administrations
    .filter((a) => a.status !== "not-done" && (role === "ivig" ? a.role === "ivig" : a.role !== "ivig"))
    .map((a) => ({ x: t(a.started_at), y: 0.5, adm: a }));
}

// Alerts by severity on the alert strip; an alert drawn within `gap` of the previous one on a row
// goes to the next row up, so close alerts stay apart.
export function alertPoints(alerts, x) {
  const gap = (x.max - x.min) * 0.011;
  const rowsEnd = ALERT_ROWS.map(() => -Infinity);
  const out = { critical: [], warning: [], info: [] };
  const ordered = [...alerts].sort((a, b) => t(a.observed_at) - t(b.observed_at) || a.kind.localeCompare(b.kind));
  for (const a of ordered) {
    const at = t(a.observed_at);
    let row = rowsEnd.findIndex((end) => at - end >= gap);
    if (row < 0) row = rowsEnd.indexOf(Math.min(...rowsEnd));
    rowsEnd[row] = at;
    (out[a.severity] || out.info).push({ x: at, y: ALERT_ROWS[row], alert: a });
  }
  return out;
}

export function temperaturePoints(timeline) {
  return timeline.temperatures.map((o) => ({ x: t(o.collected_at), y: o.value, obs: o }));
}
