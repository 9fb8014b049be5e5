// taskflow console: live status events (server-sent events from /events). No inline script
// (the Content-Security-Policy forbids it); text is only ever set with textContent.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live || !window.EventSource) return;
  const source = new EventSource("/events");
  const say = (state, text) => { live.dataset.state = state; live.textContent = text; };
  source.onopen = () => say("open", "Live: new status events appear as they happen.");
  source.onerror = () => say("closed", "Live updates interrupted; retrying…");
  // Leaving the page ends its stream: an open one would hold one of the browser's few
  // connections to the console (HTTP/1.1: six per host) while the page sits in the history.
  window.addEventListener("pagehide", () => source.close());

  const table = document.getElementById("tasks");
  const facts = document.querySelector("dl.facts[data-task-id]");

  function badge(status) {
    const span = document.createElement("span");
    span.className = "badge s-" + status.toLowerCase();
    span.textContent = status;
    return span;
  }

  function matchesFilters(e) {
    const form = document.getElementById("filters");
    if (!form) return true;
    const v = (name) => (form.elements[name] ? form.elements[name].value.trim() : "");
    if (v("owner") && v("owner") !== e.owner) return false;
    if (v("status") && v("status") !== e.status) return false;
    if (v("kind") && v("kind") !== e.kind) return false;
    if (v("q") && !e.orderId.includes(v("q"))) return false;
    return true; // "since": a status event is happening now, so within any window
  }

  function onTasksPage(e) {
    const body = table.tBodies[0];
    let row = null;
    for (const r of body.rows) if (r.dataset.taskId === e.taskId) { row = r; break; }
    if (row) {
      const cell = row.querySelector("td.status");
      cell.replaceChildren(badge(e.status));
      row.querySelector("td.reason").textContent = e.reason || "";
      if (!matchesFilters(e)) row.remove();
    } else {
      if (!matchesFilters(e)) return;
      row = body.insertRow(0);
      for (const id of ["shown", "matching"]) {
        const n = document.getElementById(id);
        if (n) n.textContent = String(Number(n.textContent) + 1);
      }
      row.dataset.taskId = e.taskId;
      const link = document.createElement("a");
      link.href = "/task/" + encodeURIComponent(e.taskId);
      link.textContent = e.orderId;
      const cells = [link, e.owner, e.kind || "?", badge(e.status), e.reason || "", "", e.occurredAt.replace("T", " ").slice(0, 19)];
      cells.forEach((c, i) => {
        const td = row.insertCell();
        if (typeof c === "string") td.textContent = c; else td.appendChild(c);
        if (i === 3) td.className = "status";
        if (i === 4) td.className = "reason";
        if (i === 5) td.className = "num";
      });
    }
    // A long run (a chaos test) adds rows without end: keep the newest 500 on the page.
    while (body.rows.length > 500) body.deleteRow(-1);
    row.classList.remove("fresh"); void row.offsetWidth; row.classList.add("fresh");
  }

  let reloading = false;
  source.addEventListener("status", (message) => {
    let e;
    try { e = JSON.parse(message.data); } catch (_) { return; }
    if (table) onTasksPage(e);
    if (facts && facts.dataset.taskId === e.taskId && !reloading) {
      // This task moved on: show the page as it is now (its timeline, path and trace).
      reloading = true;
      say("open", "Status " + e.status + ": refreshing…");
      setTimeout(() => location.reload(), 1200);
    }
  });
})();
