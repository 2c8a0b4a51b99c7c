"""What /metrics reads of the archive: messages and bytes in it, and the corpus's count."""

from __future__ import annotations

import re

import requests

from tests.relay_app.archive.tiers import T_OLD, Tier, envelope
from tests.relay_app.helpers import batch


def gauges(relay: Tier) -> dict[str, float]:
    """The relay's unlabelled commander_relay_* samples."""
    text = requests.get(f"{relay.url}/metrics", timeout=10).text
    found = re.findall(r"^(commander_relay_\w+) (\S+)$", text, re.M)
    return {name: float(value) for name, value in found}


def test_metrics_count_archived_messages_and_bytes_and_every_message_stored(
    archive_relay: Tier,
) -> None:
    envs = [envelope(T_OLD + i) for i in range(7)]
    assert archive_relay.node().send_batch(batch(envs, "seed")).status_code == 200
    before = gauges(archive_relay)
    assert (before["commander_relay_messages_stored"], before["commander_relay_archived_messages"],
            before["commander_relay_archive_bytes"]) == (7, 0, 0)  # fmt: skip
    archive_relay.mark_archived(*(e.msg_id for e in envs))  # the newest among them
    assert archive_relay.archiver(segment_rows=4).run_once().moved == 7
    after = gauges(archive_relay)
    assert after["commander_relay_archived_messages"] == 7
    sizes = sum(p.stat().st_size for p in archive_relay.directory.glob("*.jsonl.zst"))
    assert after["commander_relay_archive_bytes"] == sizes > 0
    # Every message the store ever held: moving the newest ones takes none away.
    assert after["commander_relay_messages_stored"] == 7
    assert after["commander_relay_archive_damaged_segments"] == 0
