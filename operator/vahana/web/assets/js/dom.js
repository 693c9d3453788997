// Building the page from data without ever parsing data as markup: every string becomes a
// text node (textContent), attributes are set one by one, links are built from our own routes.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "on") for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    else if (key === "data") for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

// A link to one of our routes: the id is encoded, so it can hold nothing but a path segment.
export function route(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") query.set(k, v);
  }
  const text = query.toString();
  return "#" + path + (text ? "?" + text : "");
}

export function taskLink(id, text) {
  return h("a", { href: route("/task/" + encodeURIComponent(id)) }, text);
}

export function table(columns, rows, rowProps) {
  return h("div", { class: "scroll" },
    h("table", {},
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.title)))),
      h("tbody", {}, rows.map((row) => tableRow(columns, row, rowProps)))));
}

export function tableRow(columns, row, rowProps) {
  return h("tr", rowProps ? rowProps(row) : {},
    columns.map((c) => h("td", { class: c.num ? "num" : null, data: { col: c.key } }, c.cell(row))));
}

export function empty(text) {
  return h("p", { class: "empty" }, text);
}
