// Keyboard shortcuts, as in a mail client: j/k move, o/Enter open, a acknowledge,
// e archive, x execute, / search, ? help. Never while typing in a field.
"use strict";

(function () {
  const ACTIONS = { a: "acknowledge", e: "archive", x: "execute" };
  const SAVED = "inbox-cursor";

  function rows() { return Array.from(document.querySelectorAll("#rows tr.msg")); }

  // Read from the page each time: live updates prepend rows above the cursor.
  function cursorIndex() { return rows().findIndex((row) => row.classList.contains("cursor")); }

  function typing(target) {
    if (!(target instanceof Element)) return false;
    return target.isContentEditable || !!target.closest("input, textarea, select");
  }

  function move(to) {
    const all = rows();
    if (!all.length) return;
    const cursor = Math.min(all.length - 1, Math.max(0, to));
    for (const [i, row] of all.entries()) {
      row.classList.toggle("cursor", i === cursor);
      row.setAttribute("aria-selected", i === cursor ? "true" : "false");
    }
    all[cursor].scrollIntoView({ block: "nearest" });
  }

  // The message a key acts on: the row under the cursor, or the one a detail page shows.
  function current() {
    const detail = document.querySelector("article.detail[data-msg-id]");
    if (detail) return { id: detail.dataset.msgId, row: null };
    const row = rows()[cursorIndex()];
    return row ? { id: row.dataset.msgId, row } : null;
  }

  function act(action) {
    const target = current();
    if (!target) return;
    const button = document.querySelector(
      `button[form="actions"][value="${action}:${target.id}"], #actions button[value="${action}:${target.id}"]`);
    if (!button) return;  // not offered for this message (e.g. already acknowledged)
    // The page reloads after the action: keep the cursor where it was.
    const saved = { path: location.pathname, cursor: cursorIndex(), id: target.id };
    sessionStorage.setItem(SAVED, JSON.stringify(saved));
    button.click();
  }

  function open() {
    const target = current();
    const link = target && target.row && target.row.querySelector("a.open");
    if (link) link.click();
  }

  function help() {
    const dialog = document.getElementById("help");
    if (dialog && !dialog.open) dialog.showModal();
  }

  const KEYS = {
    j: () => move(cursorIndex() + 1),
    k: () => move(Math.max(0, cursorIndex() - 1)),
    o: open,
    Enter: open,
    "/": () => { const q = document.getElementById("q"); if (q) { q.focus(); q.select(); } },
    "?": help,
  };

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
    if (typing(event.target)) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (document.querySelector("dialog[open]")) return;  // Esc closes it natively
    const handler = KEYS[event.key] || (ACTIONS[event.key] && (() => act(ACTIONS[event.key])));
    if (!handler) return;
    // Enter on a focused link or button keeps its own meaning.
    if (event.key === "Enter" && event.target.closest && event.target.closest("a, button")) return;
    event.preventDefault();
    handler();
  }

  function restore() {
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(SAVED) || "null"); } catch (err) { saved = null; }
    sessionStorage.removeItem(SAVED);
    if (!saved || saved.path !== location.pathname || saved.cursor < 0) return;
    // The same message if it is still listed (Execute adds its follow-up above it),
    // else whichever took its place (Archive removed it).
    const same = rows().findIndex((row) => row.dataset.msgId === saved.id);
    move(same >= 0 ? same : saved.cursor);
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.addEventListener("keydown", onKey);
    const button = document.getElementById("help-open");
    if (button) button.addEventListener("click", help);
    restore();
  });
})();
