// The inbox page's behaviour: live updates with a pause switch, selection, relative and
// local times, filters that submit themselves. Keyboard shortcuts live in keys.js.
// Served as a file: the page's CSP allows no inline script.
"use strict";

(function () {
  const POLL_MS = 1000;
  const byId = (id) => document.getElementById(id);
  const stateNode = byId("inbox-state");
  const state = stateNode ? JSON.parse(stateNode.textContent) : null;

  // "3 min ago" in lists, the absolute local time on hover; absolute where marked so.
  function relative(moment, now) {
    const s = Math.round((now - moment) / 1000);
    if (s < -60) return `in ${relative(now, moment)}`.replace(" ago", "");
    if (s < 45) return "just now";
    if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    if (s < 7 * 86400) return `${Math.round(s / 86400)} d ago`;
    return moment.toLocaleDateString();
  }

  function localTimes(root) {
    const now = Date.now();
    for (const node of root.querySelectorAll("time[datetime]")) {
      const value = node.getAttribute("datetime");
      if (!value) continue;
      const moment = new Date(value);
      if (isNaN(moment)) continue;
      node.title = moment.toLocaleString();
      node.textContent = node.hasAttribute("data-relative")
        ? relative(moment, now) : moment.toLocaleString();
    }
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function toLocalInput(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return "";
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function setupFilters() {
    const form = byId("filters");
    if (!form) return;
    // Absolute times are typed in local time; the URL carries UTC.
    for (const name of ["from", "to"]) {
      const input = byId(name);
      if (input && state && state[name]) input.value = toLocalInput(state[name]);
    }
    form.addEventListener("submit", () => {
      for (const name of ["from", "to"]) {
        const input = byId(name);
        if (input && input.value) {
          const d = new Date(input.value);
          if (!isNaN(d)) {
            const hidden = document.createElement("input");
            hidden.type = "hidden";
            hidden.name = name;
            hidden.value = d.toISOString().replace(/\.\d{3}Z$/, "Z");
            form.appendChild(hidden);
            input.removeAttribute("name");
          }
        }
      }
      // Keep URLs short and shareable: leave out empty fields and the default view.
      for (const field of form.elements) {
        if (!field.name) continue;
        if (field.value === "" || (field.name === "status" && field.value === "inbox")) {
          field.removeAttribute("name");
        }
      }
    });
    for (const select of form.querySelectorAll("select.auto")) {
      select.addEventListener("change", () => form.requestSubmit());
    }
  }

  function setupSelection() {
    const all = byId("select-all");
    if (!all) return;
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll('#rows input[name="msg_id"]')) {
        box.checked = all.checked;
      }
    });
  }

  let paused = sessionStorage.getItem("inbox-paused") === "1";
  let pending = 0;

  function setupLive() {
    const toggle = byId("live-toggle");
    if (toggle) {
      toggle.checked = !paused;
      toggle.addEventListener("change", () => {
        paused = !toggle.checked;
        sessionStorage.setItem("inbox-paused", paused ? "1" : "0");
        showLive("");
      });
    }
    showLive("");
    if (state && state.updates) setInterval(poll, POLL_MS);
  }

  // The switch already says "Live": the status names only what differs from it.
  function showLive(text) {
    const status = byId("live-status");
    if (!status) return;
    const shown = paused ? "paused" : text === "live" ? "" : text;
    status.textContent = shown;
    status.dataset.state = paused ? "paused" : text || "live";
  }

  let inFlight = false;
  async function poll() {
    if (paused || inFlight || document.hidden) return;
    inFlight = true;
    try {
      const sep = state.updates.includes("?") ? "&" : "?";
      const shown = Array.from(document.querySelectorAll("#rows tr.msg"), (row) => row.dataset.msgId)
        .slice(0, 200);
      const query = `after_id=${state.watermark}&shown=${encodeURIComponent(shown.join(","))}`;
      const response = await fetch(`${state.updates}${sep}${query}`, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.status === 401) { showLive("logged out"); return; }
      if (!response.ok) { showLive(`error ${response.status}`); return; }
      apply(await response.json(), new Set(shown));
      showLive("live");
    } catch (err) {
      showLive("relay unreachable");
    } finally {
      inFlight = false;
    }
  }

  function apply(update, asked) {
    state.watermark = Math.max(state.watermark, update.watermark);
    const count = byId("unread-count");
    if (count) count.textContent = String(update.unread);
    const summary = byId("summary");
    // The view's count and the rows come from one read, so they agree.
    if (summary && typeof update.summary === "string") summary.textContent = update.summary;
    restatus(update.statuses || {}, asked);
    replaceInner("node-panel", update.nodes_html);
    replaceInner("alerts", update.alerts_html);
    if (!update.rows.length) return;
    const body = byId("rows");
    if (state.first_page && body) {
      const holder = document.createElement("tbody");
      holder.innerHTML = update.rows.join("");  // server-rendered, escaped HTML
      // A row shown already may come again (PostgreSQL: a page can show a commit that was
      // still above the watermark it gave): keep one of each message.
      const present = new Set(Array.from(body.querySelectorAll("tr.msg"), (row) => row.dataset.msgId));
      const fresh = Array.from(holder.children).filter((row) => !present.has(row.dataset.msgId));
      for (const row of fresh) row.classList.add("arrived");
      body.prepend(...fresh);
      localTimes(body);
      const empty = byId("empty");
      if (empty) empty.hidden = true;
    } else {
      pending += update.rows.length;
      const banner = byId("new-banner");
      if (banner) {
        banner.hidden = false;
        byId("new-link").textContent = `${pending} new message(s) — show the newest`;
      }
    }
  }

  // Rows acted on elsewhere (another tab, a colleague) or past the time range: the server
  // names the asked rows still in the view and their status; the others leave, so the
  // list agrees with the count beside it.
  function restatus(statuses, asked) {
    for (const row of document.querySelectorAll("#rows tr.msg")) {
      const id = row.dataset.msgId;
      if (!asked.has(id)) continue;  // arrived with this update, or beyond the first 200
      const status = statuses[id];
      if (!status) { row.remove(); continue; }
      if (status === row.dataset.status) continue;
      row.classList.replace(row.dataset.status, status);
      row.dataset.status = status;
      if (status !== "unread") {
        const ack = row.querySelector('button[value^="acknowledge:"]');
        if (ack) ack.remove();
      }
    }
  }

  function replaceInner(id, html) {
    const node = byId(id);
    if (node && typeof html === "string" && node.innerHTML !== html) {
      node.innerHTML = html;  // server-rendered, escaped HTML
      localTimes(node);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    localTimes(document);
    setInterval(() => localTimes(document), 30000);
    setupFilters();
    setupSelection();
    setupLive();
  });
})();
