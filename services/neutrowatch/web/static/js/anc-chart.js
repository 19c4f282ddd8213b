// The ANC chart: log axis, grade bands from the monitor's limits, IVIG and drug lines and markers,
// alert markers. Chart.js 4 + chartjs-plugin-annotation, loaded as vendor scripts.

import { GRADE, doseText, kindLabel, num, when, wrap } from "./format.js";
import { administrationPoints, alertPoints, ancPoints, t, yRange } from "./timeline-data.js";

export const COLORS = {
  line: "#1e3a5f", ivig: "#6d28d9", drug: "#0f766e", grid: "rgba(15,23,42,0.07)",
  grade: { normal: "#15803d", mild: "#ca8a04", moderate: "#ea580c", severe: "#dc2626", agranulocytosis: "#7f1d1d" },
  band: {
    normal: "rgba(34,197,94,0.07)", mild: "rgba(234,179,8,0.14)", moderate: "rgba(249,115,22,0.15)",
    severe: "rgba(220,38,38,0.14)", agranulocytosis: "rgba(127,29,29,0.24)",
  },
  bandText: { normal: "#15803d", mild: "#854d0e", moderate: "#9a3412", severe: "#b91c1c", agranulocytosis: "#7f1d1d" },
  severity: { critical: "#b91c1c", warning: "#d97706", info: "#2563eb" },
};
const ALERT_SHAPE = { critical: ["rectRot", 7], warning: ["triangle", 7], info: ["circle", 5] };

export const AXIS_WIDTH = 72; // both charts: the plot areas line up

export function fixedWidth(scale) {
  scale.width = AXIS_WIDTH;
}

function bands(limits, y) {
  const out = {};
  limits.forEach((s, i) => {
    const xMin = s.from ? t(s.from) : undefined;
    const xMax = s.to ? t(s.to) : undefined;
    const last = i === limits.length - 1;
    const spans = [
      ["normal", s.normal, y.max, `Normal ≥ ${num(s.normal)}`],
      ["mild", s.mild, s.normal, `Mild ${num(s.mild)}–${num(s.normal)}`],
      ["moderate", s.moderate, s.mild, `Moderate ${num(s.moderate)}–${num(s.mild)}`],
      ["severe", s.agranulocytosis, s.moderate, `Severe ${num(s.agranulocytosis)}–${num(s.moderate)}`],
      ["agranulocytosis", y.min, s.agranulocytosis, `Agranulocytosis < ${num(s.agranulocytosis)}`],
    ];
    for (const [grade, lo, hi, text] of spans) {
      if (!(hi > lo)) continue;
      out[`band-${i}-${grade}`] = {
        type: "box", drawTime: "beforeDatasetsDraw", xMin, xMax, yMin: lo, yMax: hi, yScaleID: "y",
        backgroundColor: COLORS.band[grade], borderWidth: 0,
        label: {
          display: last, content: text, position: { x: "end", y: "center" }, color: COLORS.bandText[grade],
          font: { size: 11, weight: "600" }, padding: 4,
        },
      };
    }
  });
  return out;
}

function administrationLines(points, color, prefix) {
  const out = {};
  for (const p of points) {
    out[`${prefix}-${p.adm.administration_id}`] = {
      type: "line", drawTime: "beforeDatasetsDraw", xMin: p.x, xMax: p.x, xScaleID: "x",
      borderColor: color, borderWidth: 1.5, borderDash: [5, 4],
    };
  }
  return out;
}

function ancTooltip(o, floor) {
  const lines = [`ANC ${num(o.value)} cells/µL · ${GRADE[o.grade] || o.grade}`];
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
    backgroundColor: "rgba(15,23,42,0.94)", padding: 10, boxPadding: 4, titleFont: { size: 13 },
    bodyFont: { size: 12 }, displayColors: false,
    callbacks: {
      title(items) {
        const r = items[0].raw;
        if (r.obs) return when(r.obs.collected_at);
        if (r.adm) {
          const what = r.adm.role === "ivig" ? "IVIG infusion" : `${r.adm.drug_class} (watched drug)`;
          return `${what} · ${doseText(r.adm.dose_mg_per_kg)}`;
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

function markerSet(label, data, color, pointStyle, radius, extra = {}) {
  return {
    type: "scatter", label, data, yAxisID: "lanes", pointStyle, pointRadius: radius, pointHoverRadius: radius + 2,
    backgroundColor: color, borderColor: "#fff", borderWidth: 1, ...extra,
  };
}

export function ancChart(canvas, timeline, alerts, x) {
  const y = yRange(timeline);
  const anc = ancPoints(timeline, y.min);
  const ivig = administrationPoints(timeline, "ivig");
  const drugs = administrationPoints(timeline, "other");
  const flagged = alertPoints(alerts);
  const datasets = [
    {
      type: "line", label: "ANC", data: anc, yAxisID: "y", borderColor: COLORS.line, borderWidth: 2, tension: 0,
      pointRadius: 4, pointHoverRadius: 6, pointBorderColor: "#fff", pointBorderWidth: 1.5,
      pointBackgroundColor: anc.map((p) => COLORS.grade[p.obs.grade] || COLORS.line), order: 0,
    },
    markerSet("IVIG infusion", ivig, COLORS.ivig, "triangle", 7, { rotation: 180 }),
    markerSet("Watched drug", drugs, COLORS.drug, "rectRot", 6),
    ...["critical", "warning", "info"].map((sev) => markerSet(
      `${sev[0].toUpperCase()}${sev.slice(1)} alert`, flagged[sev], COLORS.severity[sev],
      ALERT_SHAPE[sev][0], ALERT_SHAPE[sev][1])),
  ];
  const chart = new window.Chart(canvas, {
    data: { datasets },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false, normalized: true,
      interaction: { mode: "nearest", intersect: true },
      layout: { padding: { right: 8 } },
      scales: {
        x: {
          type: "time", min: x.min, max: x.max, grid: { color: COLORS.grid },
          time: { minUnit: "day", displayFormats: { day: "d MMM", week: "d MMM", month: "MMM yyyy" } },
          ticks: { maxRotation: 0, autoSkipPadding: 16, color: "#52606d" },
        },
        y: {
          type: "logarithmic", min: y.min, max: y.max, afterFit: fixedWidth,
          title: { display: true, text: "ANC (cells/µL)", color: "#52606d", font: { size: 12, weight: "600" } },
          grid: { color: (c) => (isMajor(c.tick && c.tick.value) ? "rgba(15,23,42,0.12)" : "rgba(15,23,42,0.04)") },
          ticks: { color: "#52606d", autoSkip: false, callback: (v) => (isMajor(v) ? num(v) : "") },
        },
        lanes: { type: "linear", min: 0, max: 1, display: false },
      },
      plugins: {
        legend: {
          position: "top", align: "end",
          labels: { usePointStyle: true, boxWidth: 8, boxHeight: 8, padding: 14, filter: (item, data) =>
            data.datasets[item.datasetIndex].data.length > 0 },
        },
        tooltip: tooltip(y.min),
        annotation: {
          annotations: {
            ...bands(timeline.grade_limits, y),
            ...administrationLines(ivig, "rgba(109,40,217,0.55)", "ivig"),
            ...administrationLines(drugs, "rgba(15,118,110,0.55)", "drug"),
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
    ancPoints: drawn("ANC"), ivigMarkers: drawn("IVIG infusion"), drugMarkers: drawn("Watched drug"),
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
