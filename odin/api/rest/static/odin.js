// Odin web UI: confirmations before destructive actions, a JSON check before sending a signal,
// live updates of a running workflow's page, and the stack-trace button.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const field = form.dataset.jsonField && form.elements[form.dataset.jsonField];
  if (field) {
    try {
      if (!Array.isArray(JSON.parse(field.value || "[]"))) throw new Error("not an array");
      field.setCustomValidity("");
    } catch (err) {
      field.setCustomValidity('Arguments must be a JSON array, e.g. [1, "two"].');
      field.reportValidity();
      event.preventDefault();
      return;
    }
  }
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});

document.addEventListener("input", (event) => event.target.setCustomValidity && event.target.setCustomValidity(""));

// The workflows list: one checkbox checks every run on the page.
document.addEventListener("change", (event) => {
  if (event.target.id !== "check-all") return;
  for (const box of document.querySelectorAll('input[name="run"][form="batch-form"]')) box.checked = event.target.checked;
});

// A running workflow's page fetches itself every few seconds (less often while its history stands
// still) and swaps in its [data-live] parts (status, notices, pending work, history), leaving
// forms alone; it pauses while the tab is hidden and stops once the run has closed, then drops
// what only a running run offers.
(() => {
  const marker = document.querySelector("[data-refresh]");
  if (!marker) return;
  const every = Number(marker.dataset.refresh) || 2000;
  const slowest = 30000; // a run whose history stands still is polled ever less often, down to this
  let delay = every;
  let timer = null;
  let busy = false;

  const schedule = () => {
    clearTimeout(timer);
    if (!document.hidden && marker.isConnected) timer = setTimeout(refresh, delay);
  };
  const historyLength = (doc) => (doc.getElementById("history") || { children: [] }).children.length;

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(window.location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (!response.ok) return;
      const next = new DOMParser().parseFromString(await response.text(), "text/html");
      delay = historyLength(next) === historyLength(document) ? Math.min(delay * 1.5, slowest) : every;
      const open = new Set([...document.querySelectorAll("#history li.event details[open]")].map((d) => d.closest("li").dataset.eventId));
      for (const part of document.querySelectorAll("[data-live]")) {
        const fresh = next.getElementById(part.id);
        if (fresh) part.replaceWith(document.importNode(fresh, true));
      }
      for (const li of document.querySelectorAll("#history li.event")) {
        if (open.has(li.dataset.eventId)) li.querySelector("details").open = true;
      }
      if (!next.querySelector("[data-refresh]")) { // closed: nothing more will change, nothing to signal
        marker.remove();
        for (const part of document.querySelectorAll("[data-running-only]")) part.remove();
      }
    } catch (err) {
      // The server is away for a moment: try again on the next tick.
    } finally {
      busy = false;
      schedule();
    }
  }

  // Hidden: no more polls. Shown again: catch up at once.
  document.addEventListener("visibilitychange", () => {
    clearTimeout(timer);
    if (!document.hidden && marker.isConnected) {
      delay = every;
      refresh();
    }
  });
  schedule();
})();

// A link with data-fetch-into shows the #stack-trace (or other) block of the page it points at in
// the element of that id here, instead of navigating there.
document.addEventListener("click", async (event) => {
  const link = event.target.closest && event.target.closest("a[data-fetch-into]");
  if (!link) return;
  event.preventDefault();
  const into = document.getElementById(link.dataset.fetchInto);
  into.hidden = false;
  into.textContent = "Asking a worker…";
  try {
    const response = await fetch(link.href, { credentials: "same-origin" });
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const found = page.getElementById(link.dataset.fetchInto);
    into.classList.toggle("error", !response.ok);
    into.textContent = found ? found.textContent : (page.querySelector("p.error") || page.body).textContent.trim();
  } catch (err) {
    into.classList.add("error");
    into.textContent = `No answer: ${err}`;
  }
});
