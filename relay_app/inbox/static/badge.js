// Embeddable unread badge for the main GUI:
//   <script src="http://<relay>/messages/badge.js" data-target="#where" defer></script>
// It shows the relay's unread count as a link to /messages and refreshes it every 10 s.
"use strict";

(function () {
  const script = document.currentScript;
  if (!script) return;
  const origin = new URL(script.src, location.href).origin;
  const targetSpec = script.getAttribute("data-target");
  const interval = Math.max(2, Number(script.getAttribute("data-interval") || 10)) * 1000;
  const badge = document.createElement("a");
  badge.href = `${origin}/messages`;
  badge.target = "_blank";
  badge.rel = "noopener";
  badge.className = "commander-unread-badge";
  badge.title = "Unread agent messages";
  Object.assign(badge.style, {
    display: "inline-block", minWidth: "1.6em", padding: "0.1em 0.5em", borderRadius: "1em",
    background: "#b42318", color: "#fff", font: "bold 12px/1.6 system-ui, sans-serif",
    textAlign: "center", textDecoration: "none",
  });
  badge.textContent = "…";
  const target = targetSpec && targetSpec !== "self" ? document.querySelector(targetSpec) : null;
  if (target) target.appendChild(badge);
  else script.insertAdjacentElement("afterend", badge);

  async function refresh() {
    try {
      const response = await fetch(`${origin}/api/unread_count`, { credentials: "omit" });
      const data = await response.json();
      badge.textContent = String(data.unread);
      badge.dataset.unread = String(data.unread);
      badge.style.background = data.unread > 0 ? "#b42318" : "#667085";
    } catch (err) {
      badge.textContent = "?";
      badge.title = "The relay cannot be reached";
    }
  }
  refresh();
  setInterval(refresh, interval);
})();
