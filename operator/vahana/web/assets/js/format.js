// Numbers, times and statuses as people read them.
import { h } from "./dom.js";

export const PHASES = ["PENDING", "ASSIGNED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT", "UPSTREAM_FAILED"];
export const WORKER_STATES = ["AVAILABLE", "BUSY", "DRAINING", "UNHEALTHY", "TERMINATED"];

export function number(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en");
}

export function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 10) return s.toFixed(2) + "s";
  if (s < 120) return Math.round(s) + "s";
  if (s < 7200) return Math.floor(s / 60) + "m" + String(Math.round(s % 60)).padStart(2, "0") + "s";
  return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
}

export function age(stamp) {
  if (!stamp) return "–";
  return seconds(Math.max(0, Date.now() / 1000 - stamp));
}

export function ago(stamp) {
  return stamp ? age(stamp) + " ago" : "–";
}

export function when(stamp) {
  if (!stamp) return "–";
  return new Date(stamp * 1000).toLocaleString();
}

export function bytes(n) {
  if (!n) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

export function phaseLabel(phase) {
  return phase.replace("_", " ").toLowerCase();
}

export function badge(phase) {
  return h("span", { class: "badge " + phase.toLowerCase(), data: { phase } }, phaseLabel(phase));
}

export function pool(name) {
  return name ? name : h("span", { class: "muted" }, "(none)");
}

export function orDash(value) {
  return value === null || value === undefined || value === "" ? "–" : value;
}
