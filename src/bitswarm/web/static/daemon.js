// The daemon's pages, kept live: an element with data-events opens that event stream
// (server-sent events) and the rows it sends fill the [data-field] cells of the element
// whose data-id is theirs. No inline scripts (CSP), no polling.
"use strict";

function fill(element, row) {
  for (const cell of element.querySelectorAll("[data-field]")) {
    const value = row[cell.dataset.field];
    if (value !== undefined && cell.textContent !== String(value)) cell.textContent = value;
  }
  const bar = element.querySelector("progress");
  if (bar) bar.value = row.permille;
  element.classList.toggle("stopped", row.stopped);
}

function newRow(table, row) {
  const template = document.getElementById("row-template");
  if (!template) return null;
  const copy = template.content.firstElementChild.cloneNode(true);
  copy.id = "torrent-" + row.id;
  copy.dataset.id = row.id;
  for (const link of copy.querySelectorAll("[href], [action]")) {
    for (const name of ["href", "action"]) {
      const value = link.getAttribute(name);
      if (value) link.setAttribute(name, value.replace("/ID", "/" + row.id));
    }
  }
  table.tBodies[0].append(copy);
  return copy;
}

function follow(element) {
  const source = new EventSource(element.dataset.events);
  source.addEventListener("torrents", (event) => {
    const message = JSON.parse(event.data);
    for (const row of message.rows) {
      let target = element.dataset.id === String(row.id) ? element
        : element.querySelector(`[data-id="${row.id}"]`);
      if (!target && element.tagName === "TABLE") target = newRow(element, row);
      if (target) fill(target, row);
    }
    for (const id of message.removed) {
      if (element.dataset.id === String(id)) {
        element.querySelector("[data-field=state]").textContent = "Removed";
      }
      const gone = element.querySelector(`tr[data-id="${id}"]`);
      if (gone) gone.remove();
    }
    const summary = document.getElementById("summary");
    if (summary && message.summary) summary.textContent = message.summary.text;
    const empty = document.getElementById("empty");
    if (empty && element.tagName === "TABLE") empty.hidden = element.tBodies[0].rows.length > 0;
  });
  // Closed before the page goes: no "connection interrupted" error as it unloads.
  window.addEventListener("pagehide", () => source.close());
}

for (const element of document.querySelectorAll("[data-events]")) follow(element);
