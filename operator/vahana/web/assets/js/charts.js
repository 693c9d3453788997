// Time-series charts over the last hour (uPlot, vendored), in the page's light or dark colours.
import { h } from "./dom.js";

const HOUR = 3600;
const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// series: [{label, key, color (a CSS variable), unit}]; keys name columns of the server's series.
export function timeChart(title, series, { height = 180 } = {}) {
  const box = h("div", { class: "chart", data: { chart: title } });
  const holder = h("figure", { class: "card chart-card" }, h("figcaption", {}, title), box);
  let plot = null;
  let columns = null;

  function options(width) {
    const grid = { stroke: css("--grid"), width: 1 };
    const axis = { stroke: css("--muted"), grid, ticks: grid };
    return {
      width,
      height,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [axis, { ...axis, size: 52, values: (u, ticks) => ticks.map((v) => compact.format(v)) }],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: css(s.color),
          width: 2,
          // Sparse series (no sample in a bucket is null, not 0) join their points.
          spanGaps: Boolean(s.sparse),
          points: s.sparse ? { show: true, size: 5 } : undefined,
          value: (u, v) => (v === null || v === undefined ? "–" : v.toFixed(s.digits ?? 1) + " " + (s.unit || "")),
        })),
      ],
    };
  }

  function data() {
    return [columns.time, ...series.map((s) => columns[s.key])];
  }

  function draw() {
    if (!columns || typeof uPlot === "undefined") return;
    const width = Math.max(200, box.clientWidth || 600);
    if (plot === null) {
      plot = new uPlot(options(width), data(), box);
    } else {
      plot.setData(data());
    }
    const sum = series.reduce((total, s) => total + columns[s.key].reduce((a, v) => a + (v || 0), 0), 0);
    box.dataset.sum = String(Math.round(sum * 1000) / 1000);
    box.dataset.points = String(columns.time.length);
  }

  function rebuild() {
    if (plot) plot.destroy();
    plot = null;
    draw();
  }

  new ResizeObserver(() => { if (plot) plot.setSize({ width: Math.max(200, box.clientWidth), height }); }).observe(box);
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", rebuild);

  return {
    element: holder,
    // The whole hour, as the server keeps it.
    history(window) {
      columns = {};
      for (const key of ["time", ...series.map((s) => s.key)]) columns[key] = window[key].slice();
      draw();
    },
    // The newest buckets: replace those we have, append the new, drop what is past the hour.
    merge(tail) {
      if (!columns) return this.history(tail);
      const keys = ["time", ...series.map((s) => s.key)];
      tail.time.forEach((t, i) => {
        const at = columns.time.lastIndexOf(t);
        if (at >= 0) for (const k of keys) columns[k][at] = tail[k][i];
        else if (t > columns.time[columns.time.length - 1]) for (const k of keys) columns[k].push(tail[k][i]);
      });
      const oldest = columns.time[columns.time.length - 1] - HOUR;
      while (columns.time.length && columns.time[0] <= oldest) for (const k of keys) columns[k].shift();
      draw();
    },
  };
}
