"""Screenshots of the inbox for docs/inbox.md, from a real relay with sample reports.

.venv/bin/python -m tests.relay_app.inbox.screenshots docs/screenshots
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from pathlib import Path

from runtime.core.envelope import MessageEnvelope
from tests.relay_app.inbox.browser import Browser, login, wait_for
from tests.relay_app.inbox.harness import OPERATOR, PASSWORD, Relay, start_relay

REPORTS = [
    ("recruiter-001", "recruiter", "high", {"title": "Lead: Zanzibar Logistics",
     "summary": "Asked for a quote on 40 pallets a month; wants a call this week."}),
    ("recruiter-002", "recruiter", "normal", {"title": "3 new candidates for the warehouse role",
     "text": "Two with forklift licences, one available from Monday."}),
    ("coder-7", "coder", "critical", {"kind": "incident", "summary": "Nightly import failed:"
     " the supplier feed answers 503 since 02:10.", "retries": 4}),
    ("scout-3", "scout", "low", {"items": [{"company": "Acme Tools", "note": "price list"
     " changed, 4 % up on fasteners"}]}),
    ("coder-2", "coder", "normal", {"title": "Invoice parser handles credit notes",
     "text": "Merged; 214 old invoices re-parsed without a difference."}),
]  # fmt: skip


def seed(relay: Relay) -> str:
    """Store a day of traffic and the sample reports; return the report to execute."""
    rng = random.Random(7)
    now = time.time()
    envs = [
        MessageEnvelope.new(agent_id=rng.choice(["recruiter-001", "coder-7", "scout-3"]),
            node_id=rng.choice(["node-a", "node-b"]), role="worker",
            content={"text": f"routine report {i}"},
            clock=lambda i=i: now - 600 - (i * 997) % 86000)
        for i in range(240)
    ]  # fmt: skip
    for node in ("node-a", "node-b"):
        relay.send_many([e for e in envs if e.node_id == node], node)
    sent = []
    for age, (agent, role, priority, content) in zip(
        (40, 200, 900, 3000, 7000), REPORTS, strict=True
    ):
        node = "node-b" if agent.startswith("coder") else "node-a"
        sent.append(relay.send(node, agent, role=role, priority=priority, content=content,
                               timestamp=now - age, task_id=f"task-{agent[-3:]}"))  # fmt: skip
    for lag in (2, 3, 8, 21, 14, 6, 3, 2, 4, 3):
        relay.report("node-a", [agent_figures("recruiter-001", lag), agent_figures("scout-3", 1)])
        relay.report("node-b", [agent_figures("coder-7", lag * 7), agent_figures("coder-2", 2)])
        time.sleep(0.01)
    return sent[0].msg_id


def agent_figures(agent_id: str, lag: float) -> dict[str, object]:
    """A node report's figures for one agent."""
    return {"agent_id": agent_id, "cache_bytes_used": 180 * 1024**2 + lag * 1024**2,
            "cache_max_bytes": 1024**3, "outbox_depth": int(lag), "failed_batches": 0,
            "oldest_unsynced_age_s": lag, "last_sync_at": time.time() - lag}  # fmt: skip


def take(browser: Browser, relay: Relay, report: str, out: Path) -> None:
    """Desktop list, the executed report, its follow-up, the nodes page, and a phone."""
    driver = browser.driver
    driver.set_window_size(1280, 860)
    login(browser, relay.url + "/messages", OPERATOR, PASSWORD)
    driver.find_element("css selector", f'button[value="execute:{report}"]').click()
    wait_for(lambda: driver.find_elements("id", "flash"))
    driver.find_element("tag name", "body").send_keys("jj")
    driver.save_screenshot(str(out / "inbox-desktop.png"))
    driver.get(f"{relay.url}/messages/m/{report}")
    driver.save_screenshot(str(out / "inbox-detail-executed.png"))
    driver.find_element("id", "follow-up-link").click()
    wait_for(lambda: driver.find_elements("id", "origin"))
    driver.save_screenshot(str(out / "inbox-follow-up.png"))
    driver.get(f"{relay.url}/messages/nodes")
    driver.save_screenshot(str(out / "inbox-nodes.png"))
    phone = {"width": 375, "height": 812, "deviceScaleFactor": 1, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    driver.get(f"{relay.url}/messages")
    driver.execute_script("document.querySelector('#volume').scrollIntoView()")
    driver.save_screenshot(str(out / "inbox-375px.png"))


def main(out: Path) -> None:
    """Seed a relay in a temporary directory and save the screenshots into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data:
        relay = start_relay(Path(data) / "relay")
        browser = Browser()
        try:
            take(browser, relay, seed(relay), out)
        finally:
            browser.quit()
            relay.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
