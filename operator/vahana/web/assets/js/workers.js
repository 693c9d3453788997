// Workers (what `vahana get workers` lists) and pools (what `kubectl get workerpools` lists).
import { getJSON, live } from "./api.js";
import { ago, age, bytes, number, orDash, pool } from "./format.js";
import { empty, h, replace, route, table } from "./dom.js";

const WORKERS = [
  { title: "ID", cell: (w) => h("span", { class: "id" }, w.id) },
  { title: "Pool", cell: (w) => pool(w.pool) },
  { title: "Status", cell: (w) => h("span", { class: "badge " + w.status.toLowerCase() }, w.status.toLowerCase()) },
  { title: "Active", num: true, cell: (w) => w.active },
  { title: "Slots", num: true, cell: (w) => w.slots },
  { title: "CPU %", num: true, cell: (w) => w.cpu_percent.toFixed(0) },
  { title: "Mem %", num: true, cell: (w) => w.memory_percent.toFixed(0) },
  { title: "Memory", num: true, cell: (w) => bytes(w.memory_used_bytes) },
  { title: "Last heartbeat", cell: (w) => ago(w.last_heartbeat) },
  { title: "Age", num: true, cell: (w) => age(w.registered_at) },
  { title: "Host", cell: (w) => orDash(w.hostname) },
];

export async function workers(view, params) {
  const status = params.get("status") || "";
  const body = h("div", {}, h("p", { class: "muted" }, "loading…"));
  replace(view, h("h1", {}, "Workers", status ? ` · ${status.toLowerCase()}` : ""),
    status ? h("p", {}, h("a", { href: route("/workers") }, "show every worker")) : null, body);
  const render = (rows) => {
    const shown = status ? rows.filter((w) => w.status === status) : rows;
    replace(body, shown.length ? table(WORKERS, shown, (w) => ({ data: { worker: w.id } })) : empty("No worker is registered."));
  };
  render(await getJSON("/api/workers"));
  live({ topics: ["workers"], on: { workers: render } });
}

const POOLS = [
  { title: "Name", cell: (p) => (p.managed ? p.key : pool(p.key)) },
  { title: "Type", cell: (p) => p.type },
  { title: "Min", num: true, cell: (p) => orDash(p.min) },
  { title: "Max", num: true, cell: (p) => orDash(p.max) },
  { title: "Ready", num: true, cell: (p) => orDash(p.ready) },
  { title: "Busy", num: true, cell: (p) => orDash(p.busy) },
  { title: "Desired", num: true, cell: (p) => orDash(p.desired) },
  { title: "Starting", num: true, cell: (p) => orDash(p.starting) },
  { title: "Workers", num: true, cell: (p) => number(p.registered) },
  { title: "Error", cell: (p) => (p.error ? h("span", { class: "alert" }, p.error) : p.removing ? "removing" : "–") },
];

export async function pools(view) {
  const body = h("div", {}, h("p", { class: "muted" }, "loading…"));
  replace(view, h("h1", {}, "Pools"), body,
    h("p", { class: "muted" }, "Managed pools are WorkerPools (resources, or --pool-file files); other rows group the workers that registered with a pool name no manager runs."));
  const render = (rows) => {
    replace(body, rows.length ? table(POOLS, rows, (p) => ({ data: { pool: p.key } })) : empty("No pool and no worker."));
  };
  render(await getJSON("/api/pools"));
  live({ topics: ["pools"], on: { pools: render } });
}
