// Odin web UI: confirmations before destructive actions, and a JSON check before sending a signal.
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
