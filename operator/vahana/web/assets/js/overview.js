// The overview: tasks per phase, workers by status, queue depth by pool and priority, running
// per pool, and the last hour's throughput, dispatch latency and queue depth.
import { getJSON, live } from "./api.js";
import { timeChart } from "./charts.js";
import { PHASES, WORKER_STATES, number, phaseLabel, pool } from "./format.js";
import { empty, h, replace, route, table } from "./dom.js";

export async function overview(view) {
  const phaseCards = h("section", { class: "cards", "aria-label": "tasks per phase" });
  const workerCards = h("section", { class: "cards small", "aria-label": "workers by status" });
  const store = h("p", { class: "store" });
  const queue = h("div");
  const running = h("div");
  const throughput = timeChart("Throughput (tasks/s, 5 s buckets)", [
    { label: "completed", key: "completed_per_s", color: "--ok", unit: "/s" },
    { label: "failed", key: "failed_per_s", color: "--bad", unit: "/s" },
  ]);
  const latency = timeChart("Dispatch latency (ms, ready → assigned)", [
    { label: "p50", key: "latency_p50_ms", color: "--accent", unit: "ms", digits: 2, sparse: true },
    { label: "p95", key: "latency_p95_ms", color: "--warn", unit: "ms", digits: 2, sparse: true },
  ]);
  const depth = timeChart("Queue depth", [
    { label: "queued", key: "queued", color: "--accent", unit: "tasks", digits: 0, sparse: true },
  ]);
  replace(view,
    h("h1", {}, "Overview"),
    store,
    h("h2", {}, "Tasks"),
    phaseCards,
    h("div", { class: "charts" }, throughput.element, latency.element, depth.element),
    h("div", { class: "columns" },
      h("section", {}, h("h2", {}, "Queue by pool and priority"), queue),
      h("section", {}, h("h2", {}, "Running per pool"), running)),
    h("h2", {}, "Workers"),
    workerCards);

  function render(data) {
    replace(phaseCards,
      ...PHASES.map((phase) => h("a", {
        class: "card count " + phase.toLowerCase(),
        href: route("/tasks", { phase }),
        data: { phase },
      }, h("span", { class: "label" }, phaseLabel(phase)), h("span", { class: "value" }, number(data.phases[phase])))),
      h("div", { class: "card count total", data: { phase: "TOTAL" } },
        h("span", { class: "label" }, "total"), h("span", { class: "value" }, number(data.total))));
    replace(workerCards,
      ...WORKER_STATES.map((state) => h("a", { class: "card count", href: route("/workers", { status: state }), data: { state } },
        h("span", { class: "label" }, state.toLowerCase()), h("span", { class: "value" }, number(data.workers[state])))));
    replace(store, data.store.healthy ? "" : h("span", { class: "alert" }, "Task store unavailable: ", data.store.problem));
    replace(queue, data.queue.length === 0 ? empty("No task is queued.") : table([
      { title: "Pool", cell: (r) => pool(r.pool) },
      { title: "Priority", num: true, cell: (r) => r.priority },
      { title: "Queued", num: true, cell: (r) => h("a", { href: route("/tasks", { phase: "PENDING", pool: r.pool || "(none)" }) }, number(r.tasks)) },
    ], data.queue));
    replace(running, data.pools.length === 0 ? empty("No worker is registered.") : table([
      { title: "Pool", cell: (r) => r.pool },
      { title: "Running", num: true, cell: (r) => number(r.running) },
      { title: "Assigned", num: true, cell: (r) => number(r.assigned) },
      { title: "Workers", num: true, cell: (r) => number(r.workers) },
      { title: "Slots", num: true, cell: (r) => number(r.slots) },
    ], data.pools));
  }

  function charts(window, merge) {
    for (const chart of [throughput, latency, depth]) (merge ? chart.merge(window) : chart.history(window));
  }

  const first = await getJSON("/api/overview");
  render(first);
  charts(first.series, false);
  live({
    topics: ["overview"],
    on: {
      history: (window) => charts(window, false),
      overview: (data) => { render(data); charts(data.series, true); },
    },
  });
}
