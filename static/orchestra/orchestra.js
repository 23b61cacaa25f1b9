// Page behaviour for every dashboard page, loaded from /static/ so the
// Content-Security-Policy can forbid inline scripts ("script-src 'self'").
// Templates ask for behaviour with data- attributes instead of on* handlers.
"use strict";

// <form data-confirm="Delete flow x?">: ask before submitting.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
}, true);

// <input type="checkbox" data-select-all="ids">: (un)ticks every input name="ids".
document.addEventListener("click", (event) => {
  const box = event.target.closest("input[data-select-all]");
  if (!box) return;
  for (const other of document.querySelectorAll(`input[name="${box.dataset.selectAll}"]`)) {
    other.checked = box.checked;
  }
});

// <form data-swap-400>: htmx shows a 400 answer (the form with its errors)
// instead of dropping it as an error.
document.addEventListener("htmx:beforeSwap", (event) => {
  const source = event.detail.requestConfig && event.detail.requestConfig.elt;
  if (event.detail.xhr.status === 400 && source && source.closest("[data-swap-400]")) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

// Flow editor: clicking "line N" puts the cursor on that line of the YAML.
document.addEventListener("click", (event) => {
  const link = event.target.closest("a.jump");
  const area = document.getElementById("source");
  if (!link || !area) return;
  event.preventDefault();
  const lines = area.value.split("\n");
  const line = Math.min(parseInt(link.dataset.line, 10), lines.length);
  const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
  area.focus();
  area.setSelectionRange(start, start + lines[line - 1].length);
});

// Flow editor: Tab inserts two spaces instead of leaving the editor.
document.addEventListener("keydown", (event) => {
  const area = event.target;
  if (event.key !== "Tab" || event.shiftKey || area.id !== "source") return;
  event.preventDefault();
  const at = area.selectionStart;
  area.setRangeText("  ", at, area.selectionEnd, "end");
});

// Tokens page: copy a just-created token.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const field = document.getElementById(button.dataset.copy);
  if (field && navigator.clipboard) navigator.clipboard.writeText(field.value);
});
