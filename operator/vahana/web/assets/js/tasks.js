// The task list: filters (phase, pool, name), paged on the server, rows kept live.
import { getJSON, live } from "./api.js";
import { PHASES, age, badge, number, orDash, phaseLabel, pool, seconds } from "./format.js";
import { empty, h, replace, route, table, tableRow, taskLink } from "./dom.js";

const NO_POOL = "(none)";
const SIZE = 50;

const COLUMNS = [
  { key: "name", title: "Name", cell: (t) => taskLink(t.id, t.name) },
  { key: "phase", title: "Phase", cell: (t) => badge(t.phase) },
  { key: "pool", title: "Pool", cell: (t) => pool(t.pool) },
  { key: "priority", title: "Prio", num: true, cell: (t) => t.priority },
  { key: "attempt", title: "Attempt", num: true, cell: (t) => t.attempt },
  { key: "worker", title: "Worker", cell: (t) => orDash(t.worker) },
  { key: "exit", title: "Exit", num: true, cell: (t) => orDash(t.exit_code) },
  { key: "age", title: "Age", num: true, cell: (t) => age(t.created_at) },
  { key: "duration", title: "Duration", num: true, cell: (t) => seconds(t.duration) },
  { key: "reason", title: "Reason / message", cell: (t) => h("span", { class: "reason" }, t.reason) },
];

export async function tasks(view, params) {
  const state = {
    phase: params.get("phase") || "",
    pool: params.get("pool") ?? "",
    q: params.get("q") || "",
    page: Math.max(0, Number(params.get("page") || 0)),
  };
  const go = (changes) => { location.hash = route("/tasks", { ...state, ...changes }); };

  const phase = h("select", { "aria-label": "phase", name: "phase" },
    h("option", { value: "" }, "every phase"),
    h("option", { value: "PENDING,ASSIGNED,RUNNING" }, "unfinished"),
    PHASES.map((p) => h("option", { value: p }, phaseLabel(p))));
  phase.value = state.phase;
  phase.addEventListener("change", () => go({ phase: phase.value, page: 0 }));

  const pools = h("datalist", { id: "pool-names" }, h("option", { value: NO_POOL }));
  const poolInput = h("input", { type: "search", name: "pool", list: "pool-names", placeholder: "any pool", "aria-label": "pool", value: state.pool });
  poolInput.addEventListener("change", () => go({ pool: poolInput.value.trim(), page: 0 }));

  const search = h("input", { type: "search", name: "q", placeholder: "name or id", "aria-label": "search", value: state.q });
  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    // Typing pauses search by themselves, unless the page was left or the form sent meanwhile.
    typing = setTimeout(() => { if (search.isConnected) go({ q: search.value.trim(), page: 0 }); }, 300);
  });

  const results = h("div", { class: "results" }, h("p", { class: "muted" }, "loading…"));
  const pager = h("nav", { class: "pager", "aria-label": "pages" });
  const note = h("p", { class: "note" });
  replace(view,
    h("h1", {}, "Tasks"),
    h("form", { class: "filters", on: { submit: (e) => { e.preventDefault(); clearTimeout(typing); go({ q: search.value.trim(), pool: poolInput.value.trim(), page: 0 }); } } },
      phase, poolInput, pools, search, h("button", { type: "submit" }, "Filter")),
    note, results, pager);
  search.focus();

  getJSON("/api/pools").then((rows) => {
    for (const r of rows) if (r.key) pools.appendChild(h("option", { value: r.key }));
  }).catch(() => {});

  const query = new URLSearchParams({ page: state.page, size: SIZE });
  if (state.phase) query.set("phase", state.phase);
  if (state.pool) query.set("pool", state.pool === NO_POOL ? "" : state.pool);
  if (state.q) query.set("q", state.q);
  const started = performance.now();
  const data = await getJSON("/api/tasks?" + query.toString());
  const last = Math.max(0, Math.ceil(data.total / SIZE) - 1);
  if (data.tasks.length === 0) {
    replace(results, empty(data.total ? "No task on this page." : "No task matches."));
  } else {
    const rowProps = (t) => ({ data: { task: t.id } });
    const grid = table(COLUMNS, data.tasks, rowProps);
    replace(results, grid);
    const body = grid.querySelector("tbody");
    // Rows follow their tasks live; the list itself is read again only when asked.
    let totalAtLoad = null;
    live({
      topics: ["overview"],
      tasks: data.tasks.map((t) => t.id),
      on: {
        tasks: (changed) => {
          for (const t of changed) {
            const row = body.querySelector(`tr[data-task="${CSS.escape(t.id)}"]`);
            if (row) row.replaceWith(tableRow(COLUMNS, t, rowProps));
          }
        },
        overview: (o) => {
          if (totalAtLoad === null) totalAtLoad = o.total;
          const added = o.total - totalAtLoad;
          replace(note, added > 0 ? h("button", { type: "button", on: { click: () => location.reload() } }, `${number(added)} new task(s) since loaded — reload`) : "");
        },
      },
    });
  }
  const from = data.total ? state.page * SIZE + 1 : 0;
  const to = Math.min(data.total, (state.page + 1) * SIZE);
  replace(pager,
    h("a", { class: "button", href: route("/tasks", { ...state, page: 0 }), "aria-disabled": state.page === 0 ? "true" : null }, "« first"),
    h("a", { class: "button", rel: "prev", href: route("/tasks", { ...state, page: Math.max(0, state.page - 1) }), "aria-disabled": state.page === 0 ? "true" : null }, "‹ prev"),
    h("span", { class: "range", data: { total: data.total, page: state.page } }, `${number(from)}–${number(to)} of ${number(data.total)}`),
    h("a", { class: "button", rel: "next", href: route("/tasks", { ...state, page: Math.min(last, state.page + 1) }), "aria-disabled": state.page >= last ? "true" : null }, "next ›"),
    h("a", { class: "button", href: route("/tasks", { ...state, page: last }), "aria-disabled": state.page >= last ? "true" : null }, "last »"));
  view.dataset.renderedMs = String(Math.round(performance.now() - started));
}
