// One task: its status, spec, attempts (worker, exit code, duration, why) and output tail.
import { cancelTask, getJSON, live, token } from "./api.js";
import { badge, bytes, number, orDash, pool, seconds, when } from "./format.js";
import { empty, h, replace, table } from "./dom.js";

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function labels(map) {
  const entries = Object.entries(map || {});
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(", ") : "–";
}

function files(list) {
  return list.length ? h("ul", { class: "plain" }, list.map(([from, to]) => h("li", {}, h("code", {}, from), " → ", h("code", {}, to)))) : "–";
}

const ATTEMPTS = [
  { title: "#", num: true, cell: (a) => a.attempt },
  { title: "Worker", cell: (a) => orDash(a.worker) },
  { title: "Pool", cell: (a) => (a.pool === null ? "–" : pool(a.pool)) },
  { title: "Phase", cell: (a) => badge(a.phase) },
  { title: "Exit", num: true, cell: (a) => orDash(a.exit_code) },
  { title: "Duration", num: true, cell: (a) => seconds(a.duration) },
  { title: "Assigned", cell: (a) => when(a.assigned_at) },
  { title: "Failure", cell: (a) => orDash(a.failure_kind && a.failure_kind.toLowerCase()) },
  { title: "Why", cell: (a) => h("span", { class: "reason" }, a.why) },
];

function wholeOutput(t) {
  const kept = t.output_kept;
  if (!kept || !kept.bytes) return null;
  const href = "/api/tasks/" + encodeURIComponent(t.id) + "/output";
  return h("p", {}, h("a", { href, target: "_blank", rel: "noopener", data: { testid: "whole-output" } },
    `Whole output (${bytes(kept.bytes)}${kept.truncated ? ", cut at the scheduler's cap" : ""})`));
}

export async function task(view, id, config) {
  const head = h("div", { class: "task-head" });
  const status = h("section", { class: "card" });
  const spec = h("section", { class: "card" });
  const attempts = h("section");
  const output = h("section");
  replace(view, head, h("div", { class: "columns" }, status, spec), attempts, output);

  let reads = 0;
  async function load() {
    const read = ++reads;
    const t = await getJSON("/api/tasks/" + encodeURIComponent(id));
    if (read === reads) render(t); // an older answer arriving late must not undo a newer one
    return t;
  }

  function cancelButton(t) {
    if (!config.cancel || !token() || t.final) return null;
    const button = h("button", { type: "button", class: "danger", data: { action: "cancel" } }, t.cancel_requested ? "Cancel requested" : "Cancel task");
    button.disabled = t.cancel_requested;
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await cancelTask(t.id);
        await load();
      } catch (error) {
        button.replaceWith(h("span", { class: "alert" }, "Cancel failed: ", error.message));
      }
    });
    return button;
  }

  function render(t) {
    replace(head, h("h1", {}, h("span", { class: "name" }, t.name)), badge(t.phase), cancelButton(t),
      h("p", { class: "muted" }, "id ", h("code", {}, t.id), t.namespace ? ` · namespace ${t.namespace}` : ""));
    replace(status, h("h2", {}, "Status"), facts([
      ["Phase", badge(t.phase)],
      t.pending_reason && ["Waiting because", h("span", { class: "reason" }, t.pending_reason)],
      ["Attempt", t.attempt],
      ["Worker", orDash(t.worker)],
      ["Exit code", orDash(t.exit_code)],
      ["Created", when(t.created_at)],
      ["Started", when(t.started_at)],
      ["Finished", when(t.finished_at)],
      ["Duration", seconds(t.duration)],
      ["Failures", `${t.failures.task} task, ${t.failures.infrastructure} infrastructure`],
      t.message && ["Message", h("span", { class: "reason" }, t.message)],
    ]));
    const s = t.spec;
    replace(spec, h("h2", {}, "Spec"), h("pre", { class: "command" }, s.command), facts([
      ["Pool", pool(t.pool)],
      ["Priority", s.priority],
      ["Resources", `cpu ${s.resources.cpu || "–"}, memory ${bytes(s.resources.memory_bytes)}, gpus ${s.resources.gpus}`],
      ["Labels", labels(s.resources.labels)],
      ["Preferred", labels(s.resources.preferred_labels)],
      ["Timeout", s.timeout_seconds ? seconds(s.timeout_seconds) : "worker default"],
      ["Deadline", when(s.deadline)],
      ["Retries", `${s.retry.max_task_retries} task, ${s.retry.max_infra_retries} infrastructure, backoff ${seconds(s.retry.backoff_seconds)}`],
      ["Environment", s.environment.length ? s.environment.join(", ") + " (values not shown)" : "–"],
      ["Inputs", files(s.input_files)],
      ["Outputs", files(s.output_files)],
      s.experiment_id && ["Experiment", s.experiment_id],
      t.key && ["Key", h("code", {}, t.key)],
    ]));
    replace(attempts, h("h2", {}, `Attempts (${number(t.attempts.length)})`),
      t.attempts.length ? table(ATTEMPTS, t.attempts) : empty("Not dispatched yet."));
    replace(output, h("h2", {}, "Output"),
      t.output_tail
        ? [h("p", { class: "muted" }, "The end of the task's output as its worker kept it (the last bytes of stdout and stderr)."),
          h("pre", { class: "output", data: { testid: "output" } }, t.output_tail)]
        : empty(t.final ? "The task left no output." : "Its output appears when it ends."),
      wholeOutput(t));
  }

  await load();
  // Changes between the first read and the stream's start are caught by a read on (re)connect.
  live({ tasks: [id], on: { tasks: () => load() }, onOpen: () => load() });
}
