// Talking to the scheduler: the JSON API, the live event stream, the client token.

const TOKEN_KEY = "vahana.client-token";

export async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) {
    const text = (await response.text()).trim();
    throw new Error(text || response.status + " " + response.statusText);
  }
  return response.json();
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

async function post(path, presented) {
  const response = await fetch(path, {
    method: "POST",
    headers: { Authorization: "Bearer " + presented, Accept: "application/json" },
  });
  if (!response.ok) throw new Error((await response.text()).trim() || String(response.status));
  return response.json();
}

export async function unlock(presented) {
  await post("/api/token", presented);
  sessionStorage.setItem(TOKEN_KEY, presented);
}

export function cancelTask(id) {
  return post("/api/tasks/" + encodeURIComponent(id) + "/cancel", token());
}

// One stream per page: topics (overview, workers, pools) and the ids of the tasks it shows.
let current = null;

// `onOpen` runs each time the stream (re)connects: what changed before it listened is read then.
export function live({ topics = [], tasks = [], on = {}, onOpen = null }) {
  stopLive();
  const query = new URLSearchParams();
  if (topics.length) query.set("topics", topics.join(","));
  if (tasks.length) query.set("tasks", tasks.join(","));
  const source = new EventSource("/api/events?" + query.toString());
  const indicator = document.getElementById("live");
  source.onopen = () => {
    indicator.classList.add("on");
    if (onOpen) onOpen();
  };
  source.onerror = () => indicator.classList.remove("on");
  for (const [kind, handler] of Object.entries(on)) {
    source.addEventListener(kind, (event) => handler(JSON.parse(event.data)));
  }
  current = source;
  return source;
}

export function stopLive() {
  if (current) current.close();
  current = null;
  document.getElementById("live").classList.remove("on");
}
