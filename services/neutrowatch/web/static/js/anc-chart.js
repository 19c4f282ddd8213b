// The ANC chart: a strip of infusions and watched drugs on top, ANC on a log axis with the grade
// bands of the monitor's limits in the middle, a strip of alerts below, one time axis.
// Chart.js 4 + chartjs-plugin-annotation + the date-fns adapter, loaded as vendor scripts.

import { GRADE, count, doseText, kindLabel, num, when, wrap } from "./format.js";
import { administrationPoints, alertPoints, ancPoints, t, yRange } from "./timeline-data.js";

export const COLORS = {
  line: "#1e3a5f", ivig: "#6d28d9", drug: "#0f766e", grid: "rgba(15,23,42,0.07)", text: "#52606d",
  grade: { normal: "#15803d", mild: "#ca8a04", moderate: "#ea580c", severe: "#dc2626", agranulocytosis: "#7f1d1d" },
  band: {
    normal: "rgba(34,197,94,0.07)", mild: "rgba(234,179,8,0.14)", moderate: "rgba(249,115,22,0.15)",
    severe: "rgba(220,38,38,0.13)", agranulocytosis: "rgba(127,29,29,0.22)",
  },
  bandText: { normal: "#15803d", mild: "#854d0e", moderate: "#9a3412", severe: "#b91c1c", agranulocytosis: "#7f1d1d" },
  severity: { critical: "#b91c1c", warning: "#d97706", info: "#2563eb" },
};
const ALERT_SHAPE = { critical: ["rectRot", 7], warning: ["triangle", 7], info: ["circle", 5] };
const FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

// Both charts reserve the same room left (axis) and right (grade names): their plot areas line up.
export const AXIS_WIDTH = 72;
export const RIGHT_ROOM = 128;
export const fixedWidth = (scale) => { scale.width = AXIS_WIDTH; };

function spans(s, y) {
  return [
    ["normal", s.normal, y.max, `≥ ${num(s.normal)}`],
    ["mild", s.mild, s.normal, `${num(s.mild)}–${num(s.normal)}`],
    ["moderate", s.moderate, s.mild, `${num(s.moderate)}–${num(s.mild)}`],
    ["severe", s.agranulocytosis, s.moderate, `${num(s.agranulocytosis)}–${num(s.moderate)}`],
    ["agranulocytosis", y.min, s.agranulocytosis, `< ${num(s.agranulocytosis)}`],
  ].filter(([, lo, hi]) => hi > lo);
}

function bands(limits, y) {
  const out = {};
  limits.forEach((s, i) => {
    for (const [grade, lo, hi] of spans(s, y)) {
      out[`band-${i}-${grade}`] = {
        type: "box", drawTime: "beforeDatasetsDraw", xScaleID: "x", yScaleID: "y",
        xMin: s.from ? t(s.from) : undefined, xMax: s.to ? t(s.to) : undefined, yMin: lo, yMax: hi,
        backgroundColor: COLORS.band[grade], borderWidth: 0,
      };
    }
  });
  return out;
}

// Grade names beside the plot, for the limits in force now (the last segment).
const gradeNames = {
  id: "gradeNames",
  afterDraw(chart, _args, options) {
    const { ctx, chartArea } = chart;
    const y = chart.scales.y;
    ctx.save();
    ctx.textBaseline = "middle";
    for (const [grade, lo, hi, range] of options.spans) {
      const top = y.getPixelForValue(Math.min(hi, y.max));
      const bottom = y.getPixelForValue(Math.max(lo, y.min));
      const mid = (top + bottom) / 2;
      ctx.fillStyle = COLORS.grade[grade];
      ctx.fillRect(chartArea.right + 4, top + 1, 4, bottom - top - 2);
      ctx.fillStyle = COLORS.bandText[grade];
      const twoLines = bottom - top >= 30;
      ctx.font = `600 11px ${FONT}`;
      ctx.fillText(GRADE[grade], chartArea.right + 13, twoLines ? mid - 7 : mid);
      ctx.font = `11px ${FONT}`;
      if (twoLines) ctx.fillText(range, chartArea.right + 13, mid + 7);
      else ctx.fillText(range, chartArea.right + 17 + ctx.measureText(GRADE[grade]).width + 4, mid);
    }
    ctx.restore();
  },
};

function administrationLines(points, color, prefix) {
  const out = {};
  for (const p of points) {
    out[`${prefix}-${p.adm.administration_id}`] = {
      type: "line", drawTime: "beforeDatasetsDraw", xScaleID: "x", xMin: p.x, xMax: p.x,
      // from the marker on the event strip down through the ANC plot and the alert strip
      yScaleID: "events", yMax: p.y, yMin: ({ chart }) => chart.scales.events.getValueForPixel(chart.chartArea.bottom),
      adjustScaleRange: false, borderColor: color, borderWidth: 1.5, borderDash: [5, 4],
    };
  }
  return out;
}

function ancTooltip(o, floor) {
  const lines = [`ANC ${count(o)} cells/µL · ${GRADE[o.grade] || o.grade}`];
  if (o.value < floor) lines.push(`(drawn at the axis floor, ${num(floor)})`);
  lines.push(`${o.provenance === "derived" ? "derived from WBC × differential" : "direct count"}, status ${o.status}`);
  for (const l of o.linked_infusions || []) {
    lines.push(`day ${num(l.days_after_start)} after ${l.drug_class === "ivig" ? "IVIG" : l.drug_class}`);
  }
  return lines;
}

function admTooltip(a) {
  const lines = [`started ${when(a.started_at)}`];
  if (a.ended_at) lines.push(`ended ${when(a.ended_at)}`);
  lines.push(`status ${a.status}`);
  return lines;
}

function tooltip(floor) {
  return {
    backgroundColor: "rgba(15,23,42,0.94)", padding: 10, titleFont: { size: 13 }, bodyFont: { size: 12 },
    displayColors: false,
    callbacks: {
      title(items) {
        const r = items[0].raw;
        if (r.obs) return when(r.obs.collected_at);
        if (r.adm) {
          const what = r.adm.role === "ivig" ? "IVIG infusion"
            : `${r.adm.drug_class}${r.adm.role === "watched" ? " (watch list)" : ""}`;
          return `${what} · ${doseText(r.adm)}`;
        }
        const a = r.alert;
        return `${a.severity[0].toUpperCase()}${a.severity.slice(1)} · ${kindLabel(a.kind)}`;
      },
      label(item) {
        const r = item.raw;
        if (r.obs) return ancTooltip(r.obs, floor);
        if (r.adm) return admTooltip(r.adm);
        return [...wrap(r.alert.summary), `observed ${when(r.alert.observed_at)}`];
      },
    },
  };
}

function markerSet(label, data, color, pointStyle, radius, axis, extra = {}) {
  return {
    type: "scatter", label, data, yAxisID: axis, pointStyle, pointRadius: radius, pointHoverRadius: radius + 2,
    backgroundColor: color, borderColor: "#fff", borderWidth: 1, ...extra,
  };
}

// A strip: a 0..1 axis stacked with the ANC axis, named by its ticks.
function strip(weight, names) {
  return {
    type: "linear", min: 0, max: 1, stack: "timeline", stackWeight: weight, offset: false,
    grid: { display: false }, border: { color: "rgba(15,23,42,0.15)" }, afterFit: fixedWidth,
    afterBuildTicks: (scale) => { scale.ticks = Object.keys(names).map((v) => ({ value: Number(v) })); },
    ticks: { color: COLORS.text, font: { size: 11, weight: "600" }, callback: (v) => names[v] || "" },
  };
}

export function ancChart(canvas, timeline, alerts, x) {
  const y = yRange(timeline);
  const anc = ancPoints(timeline, y.min);
  const ivig = administrationPoints(timeline, "ivig");
  const drugs = administrationPoints(timeline, "other");
  const flagged = alertPoints(alerts, x);
  const both = ivig.length > 0 && drugs.length > 0; // one row each on the event strip, or one centred row
  ivig.forEach((p) => { p.y = both ? 0.7 : 0.5; });
  drugs.forEach((p) => { p.y = both ? 0.3 : 0.5; });
  const events = { ...(ivig.length ? { [ivig[0].y]: "IVIG" } : {}), ...(drugs.length ? { [drugs[0].y]: "Drugs" } : {}) };
  const current = timeline.grade_limits[timeline.grade_limits.length - 1];
  const datasets = [
    {
      type: "line", label: "ANC", data: anc, yAxisID: "y", borderColor: COLORS.line, backgroundColor: COLORS.line,
      borderWidth: 2, tension: 0, pointRadius: 4, pointHoverRadius: 6, pointBorderColor: "#fff",
      pointBorderWidth: 1.5, pointBackgroundColor: anc.map((p) => COLORS.grade[p.obs.grade] || COLORS.line),
    },
    markerSet("IVIG infusion", ivig, COLORS.ivig, "triangle", 7, "events", { rotation: 180 }),
    markerSet("Other drug", drugs, COLORS.drug, "rectRot", 6, "events"),
    ...["critical", "warning", "info"].map((sev) => markerSet(
      `${sev[0].toUpperCase()}${sev.slice(1)} alert`, flagged[sev], COLORS.severity[sev],
      ALERT_SHAPE[sev][0], ALERT_SHAPE[sev][1], "alerts")),
  ];
  const chart = new window.Chart(canvas, {
    data: { datasets },
    plugins: [gradeNames],
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false, normalized: true,
      interaction: { mode: "nearest", intersect: true },
      layout: { padding: { right: RIGHT_ROOM } },
      scales: {
        // stacked axes are laid out bottom-up in the order given: alerts, ANC, events
        alerts: strip(1.7, { 0.5: "Alerts" }),
        x: {
          type: "time", min: x.min, max: x.max, grid: { color: COLORS.grid },
          time: { minUnit: "day", displayFormats: { day: "d MMM", week: "d MMM", month: "MMM yyyy" } },
          ticks: { maxRotation: 0, autoSkipPadding: 16, color: COLORS.text },
        },
        y: {
          type: "logarithmic", min: y.min, max: y.max, stack: "timeline", stackWeight: 7, offset: false,
          afterFit: fixedWidth, border: { color: "rgba(15,23,42,0.15)" },
          title: { display: true, text: "ANC (cells/µL)", color: COLORS.text, font: { size: 12, weight: "600" } },
          grid: { color: (c) => (isMajor(c.tick && c.tick.value) ? "rgba(15,23,42,0.12)" : "rgba(15,23,42,0.04)") },
          ticks: { color: COLORS.text, autoSkip: false, callback: (v) => (isMajor(v) ? num(v) : "") },
        },
        events: strip(1, events),
      },
      plugins: {
        legend: {
          position: "top", align: "end",
          labels: {
            usePointStyle: true, boxWidth: 8, boxHeight: 8, padding: 14, color: COLORS.text,
            filter: (item, data) => data.datasets[item.datasetIndex].data.length > 0,
            generateLabels: (c) => window.Chart.defaults.plugins.legend.labels.generateLabels(c).map((l) =>
              (l.datasetIndex === 0 ? { ...l, fillStyle: COLORS.line, strokeStyle: COLORS.line, lineWidth: 0 } : l)),
          },
        },
        tooltip: tooltip(y.min),
        gradeNames: { spans: current ? spans(current, y) : [] },
        annotation: {
          annotations: {
            ...bands(timeline.grade_limits, y),
            ...administrationLines(ivig, "rgba(109,40,217,0.5)", "ivig"),
            ...administrationLines(drugs, "rgba(15,118,110,0.3)", "drug"),
          },
        },
      },
    },
  });
  const counts = countsOf(chart);
  Object.assign(canvas.dataset, Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, String(v)])));
  return { chart, counts };
}

// What the chart really holds: drawn elements per dataset, annotations by kind.
export function countsOf(chart) {
  const drawn = (label) => {
    const i = chart.data.datasets.findIndex((d) => d.label === label);
    return i < 0 ? 0 : chart.getDatasetMeta(i).data.length;
  };
  const ids = Object.keys(chart.options.plugins.annotation.annotations);
  const alerts = ["Critical alert", "Warning alert", "Info alert"].map(drawn);
  return {
    ancPoints: drawn("ANC"), ivigMarkers: drawn("IVIG infusion"), drugMarkers: drawn("Other drug"),
    ivigLines: ids.filter((k) => k.startsWith("ivig-")).length,
    drugLines: ids.filter((k) => k.startsWith("drug-")).length,
    gradeBands: ids.filter((k) => k.startsWith("band-")).length,
    alertAnnotations: alerts[0] + alerts[1] + alerts[2], criticalAlerts: alerts[0],
  };
}

function isMajor(v) {
  if (!(v > 0)) return false;
  const m = v / 10 ** Math.floor(Math.log10(v) + 1e-9);
  return [1, 2, 5].some((k) => Math.abs(m - k) < 1e-6);
}
