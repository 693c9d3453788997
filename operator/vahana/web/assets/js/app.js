// The dashboard's router: one document, pages chosen by the URL's fragment (#/tasks?phase=…).
import { forgetToken, getJSON, stopLive, token, unlock } from "./api.js";
import { h, replace } from "./dom.js";
import { overview } from "./overview.js";
import { task } from "./task.js";
import { tasks } from "./tasks.js";
import { pools, workers } from "./workers.js";

const view = document.getElementById("view");
let config = { cancel: false };

function parse() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  return { path, params: new URLSearchParams(query || "") };
}

async function show() {
  stopLive();
  const { path, params } = parse();
  const parts = path.split("/").filter(Boolean);
  const name = parts[0] || "overview";
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", link.dataset.route === (name === "task" ? "tasks" : name));
  }
  view.dataset.page = name;
  delete view.dataset.ready;
  try {
    if (name === "overview") await overview(view);
    else if (name === "tasks") await tasks(view, params);
    else if (name === "task" && parts[1]) await task(view, decodeURIComponent(parts[1]), config);
    else if (name === "workers") await workers(view, params);
    else if (name === "pools") await pools(view);
    else replace(view, h("h1", {}, "Not found"), h("p", {}, "No such page."));
    document.title = "Vahana · " + (name === "task" ? decodeURIComponent(parts[1] || "") : name);
  } catch (error) {
    replace(view, h("h1", {}, "Cannot load this page"), h("p", { class: "alert" }, error.message));
  }
  view.dataset.ready = "1";
}

function showLock() {
  const unlocked = config.cancel && token();
  document.getElementById("unlock").hidden = !config.cancel || Boolean(unlocked);
  document.getElementById("unlocked").hidden = !unlocked;
}

document.getElementById("unlock").addEventListener("submit", async (event) => {
  event.preventDefault();
  const field = document.getElementById("token");
  try {
    await unlock(field.value.trim());
    field.value = "";
    field.classList.remove("wrong");
    showLock();
    show();
  } catch (error) {
    field.classList.add("wrong");
    field.title = error.message;
  }
});

document.getElementById("lock").addEventListener("click", (event) => {
  event.preventDefault();
  forgetToken();
  showLock();
  show();
});

window.addEventListener("hashchange", show);

getJSON("/api/config")
  .then((loaded) => { config = loaded; })
  .catch(() => {})
  .finally(() => { showLock(); show(); });
