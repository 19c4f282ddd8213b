// The temperature chart under the ANC chart: same time axis, the febrile thresholds the monitor uses.

import { num, when } from "./format.js";
import { COLORS, fixedWidth, RIGHT_ROOM } from "./anc-chart.js";
import { administrationPoints, temperaturePoints } from "./timeline-data.js";

export function temperatureChart(canvas, timeline, x) {
  const points = temperaturePoints(timeline);
  const fever = timeline.fever_c;
  const values = points.map((p) => p.y);
  const color = (v) => (v >= fever.single ? "#b91c1c" : v >= fever.sustained ? "#d97706" : "#0f4c81");
  const line = (value, text, stroke, position) => ({
    type: "line", yMin: value, yMax: value, yScaleID: "y", borderColor: stroke, borderWidth: 1.2, borderDash: [6, 4],
    label: { display: true, content: text, position, backgroundColor: "rgba(255,255,255,0.85)",
      color: stroke, font: { size: 10, weight: "600" }, padding: 2 },
  });
  const ivig = Object.fromEntries(administrationPoints(timeline, "ivig").map((p) => [`ivig-${p.adm.administration_id}`,
    { type: "line", xMin: p.x, xMax: p.x, borderColor: "rgba(109,40,217,0.35)", borderWidth: 1, borderDash: [5, 4] }]));
  const chart = new window.Chart(canvas, {
    type: "line",
    data: { datasets: [{
      label: "Temperature", data: points, borderColor: "#0f4c81", borderWidth: 1.5, tension: 0,
      pointRadius: 3.5, pointBackgroundColor: points.map((p) => color(p.y)), pointBorderColor: "#fff",
    }] },
    options: {
      animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
      interaction: { mode: "nearest", intersect: true },
      layout: { padding: { right: RIGHT_ROOM } },
      scales: {
        x: { type: "time", min: x.min, max: x.max, grid: { color: COLORS.grid },
          time: { minUnit: "day", displayFormats: { day: "d MMM", week: "d MMM", month: "MMM yyyy" } },
          ticks: { maxRotation: 0, autoSkipPadding: 16, color: "#52606d" } },
        y: { min: Math.min(35, ...values.map((v) => Math.floor(v - 0.2))),
          max: Math.max(40, ...values.map((v) => Math.ceil(v + 0.2))),
          afterFit: fixedWidth,
          title: { display: true, text: "°C", color: "#52606d", font: { size: 12, weight: "600" } },
          grid: { color: COLORS.grid }, ticks: { color: "#52606d", stepSize: 1 } },
      },
      plugins: {
        legend: { display: false },
        tooltip: { backgroundColor: "rgba(15,23,42,0.94)", padding: 10, displayColors: false, callbacks: {
          title: (items) => when(items[0].raw.obs.collected_at),
          label: (item) => `${num(item.raw.y)} °C · status ${item.raw.obs.status}`,
        } },
        annotation: { annotations: {
          ...ivig,
          single: line(fever.single, `${num(fever.single)} °C once`, "#b91c1c", "end"),
          sustained: line(fever.sustained, `${num(fever.sustained)} °C for ${num(fever.sustained_minutes)} min`, "#d97706", "start"),
        } },
      },
    },
  });
  canvas.dataset.temperaturePoints = String(chart.getDatasetMeta(0).data.length);
  return chart;
}
