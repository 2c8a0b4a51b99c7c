"""The inbox's actions: Acknowledge, Execute, Archive (and Restore from the archive).

All are idempotent. Acknowledge moves unread to acknowledged; Archive moves anything to
archived; Restore moves archived back to acknowledged. Execute stores one follow-up task
message per report, addressed to the agent that sent it (`recipient` = its agent_id, so
`GET /query/messages?recipient=<agent>` finds it), through the IngestActor like any
message. Its msg_id is derived from the report's, so executing twice stores it once, and
only a newly stored follow-up is posted to relay.execute_webhook.

Each action records who did it and when for every message it changed (the audit trail,
`inbox_audit`); a repeat that changes nothing records nothing. An execute's entry on the
report names the follow-up, and the follow-up gets a `follow_up` entry naming the report.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from relay_app.diskspace import SpaceGate
from relay_app.errors import BadRequest, Conflict
from relay_app.inbox.reader import InboxReader
from relay_app.inbox.webhook import post_json
from relay_app.inbox.writer import InboxWriter
from relay_app.ingest import Ingest
from relay_app.store import StoreMessages
from relay_app.store_inbox import Audit, InboxRow
from relay_app.validate import message_row
from runtime.core.envelope import FORBIDDEN_TEXT, MAX_TEXT, MessageEnvelope
from runtime.core.errors import InvalidMessage

logger = logging.getLogger(__name__)

ACTIONS = ("acknowledge", "execute", "archive", "restore")
# action -> (the status it sets, the statuses it moves from)
_MOVES = {
    "acknowledge": ("acknowledged", ("unread",)),
    "archive": ("archived", ("unread", "acknowledged")),
    "restore": ("acknowledged", ("archived",)),
}
OPERATOR_AGENT = "operator"
WEBHOOK_TIMEOUT_S = 3.0
MAX_SELECTION = 500
# Follow-up msg_ids are uuid5(EXECUTE_NAMESPACE, report msg_id): stable across repeats.
EXECUTE_NAMESPACE = uuid.UUID("6f0b8a52-3c1e-4d55-9a4c-2f1d2e7c9b10")


@dataclass
class Outcome:
    """What an action did, for the notice shown after it."""

    action: str
    selected: int
    changed: int = 0
    created: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def notice(self) -> str:
        """One line for the operator."""
        done = {
            "acknowledge": "acknowledged",
            "archive": "archived",
            "restore": "restored",
            "execute": "executed",
        }
        text = f"{self.changed} of {self.selected} message(s) {done[self.action]}"
        if self.action == "execute":
            text = f"{len(self.created)} follow-up task(s) created for {self.selected} report(s)"
        return "; ".join([text, *self.problems])


class Actions:
    """Carries out actions through the InboxWriter and the IngestActor."""

    def __init__(
        self,
        reader: InboxReader,
        writer: InboxWriter,
        ingest: Ingest,
        gate: SpaceGate,
        webhook: str | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Wire the action handlers to the store's writers."""
        self._reader = reader
        self._writer = writer
        self._ingest = ingest
        self._gate = gate
        self._webhook = webhook
        self._clock = clock

    def run(self, action: str, msg_ids: Sequence[str], user: str) -> Outcome:
        """Apply `action` to the messages; raise a RelayAppError if the store refuses."""
        ids = list(dict.fromkeys(msg_ids))[:MAX_SELECTION]
        outcome = Outcome(action, len(ids))
        audit = Audit(action, user, self._clock())
        if action == "execute":
            self._execute_reports(ids, audit, outcome)
        elif action in _MOVES:
            status, from_statuses = _MOVES[action]
            outcome.changed = self._writer.set_status(ids, status, from_statuses, audit)
            if action == "restore":
                outcome.changed += self._writer.restore_archived(ids, audit)
        else:
            raise ValueError(f"unknown action {action!r}")
        return outcome

    def _execute_reports(self, ids: list[str], audit: Audit, outcome: Outcome) -> None:
        reports = [row for row in map(self._reader.message, ids) if row is not None]
        follow_ups = [follow_up(row, audit.user, audit.at) for row in reports]
        if follow_ups:
            self._gate.check()
        stored = []
        for message in follow_ups:
            row = message_row(message, message["node_id"], "follow-up")
            try:
                result = self._ingest.submit(StoreMessages(node_id=row.node_id, rows=(row,)))
            except Conflict:
                # Its id is predictable: a node stored a message under it first. Say so;
                # never mark that message read as if it were the operator's.
                report = message["content"]["in_reply_to"]
                outcome.problems.append(f"follow-up of {report} not stored: {row.msg_id} taken")
                continue
            stored.append(message)
            if result.inserted:
                outcome.created.append(message)
        # Recorded only when a follow-up was newly made: a repeat changes nothing.
        made = [(m["content"]["in_reply_to"], m["msg_id"]) for m in outcome.created]
        self._writer.record_audit(audit, made)
        self._writer.record_audit(replace(audit, action="follow_up"), [(f, r) for r, f in made])
        # The operator wrote the follow-ups: they are not unread for the operator.
        touched = [r.msg_id for r in reports] + [m["msg_id"] for m in stored]
        outcome.changed = self._writer.set_status(touched, "acknowledged", ("unread",))
        for message in outcome.created:
            problem = self._post_webhook(message)
            if problem:
                outcome.problems.append(problem)

    def _post_webhook(self, message: dict[str, Any]) -> str | None:
        if not self._webhook:
            return None
        status = post_json(self._webhook, orjson.dumps(message), WEBHOOK_TIMEOUT_S)
        if isinstance(status, Exception):
            logger.warning("execute webhook failed: %s", status)
            return f"webhook not reached ({type(status).__name__}); the follow-up is stored"
        if status >= 300:
            logger.warning("execute webhook answered %s", status)
            return f"webhook answered {status}; the follow-up is stored"
        return None


def follow_up(report: InboxRow, user: str, now: float) -> dict[str, Any]:
    """The follow-up task message (wire form) for a report, addressed to its agent.

    It quotes the report's content; when quoting breaks the envelope rule (a report at
    the depth or size limit, or one stored under an older rule), it refers to the
    report by msg_id only and says why. BadRequest if even that cannot be stored.
    """
    try:
        return _follow_up(report, user, now, {"report": report.content})
    except InvalidMessage as exc:
        omitted = {"report_omitted": f"the report cannot be quoted: {exc}"[:MAX_TEXT]}
    try:
        return _follow_up(report, user, now, omitted)
    except InvalidMessage as exc:
        raise BadRequest(f"report {report.msg_id!r} cannot be executed: {exc}") from exc


def _follow_up(report: InboxRow, user: str, now: float, quote: dict[str, Any]) -> dict[str, Any]:
    task_id = report.task_id if _is_text(report.task_id) else None
    envelope = MessageEnvelope(
        msg_id=str(uuid.uuid5(EXECUTE_NAMESPACE, report.msg_id)),
        timestamp=now,
        agent_id=OPERATOR_AGENT,
        node_id=report.node_id,
        task_id=task_id,
        sender=FORBIDDEN_TEXT.sub("", user)[:MAX_TEXT],
        recipient=report.agent_id,
        role=OPERATOR_AGENT,
        priority=report.priority,
        content={
            "kind": "execute",
            "in_reply_to": report.msg_id,
            "task_id": task_id,
            "requested_by": user,
            "requested_at": now,
            **quote,
        },
    )
    return envelope.checked().to_wire()


def _is_text(value: Any) -> bool:
    """Whether a stored text field still passes the rule (older rows may not)."""
    return isinstance(value, str) and len(value) <= MAX_TEXT and not FORBIDDEN_TEXT.search(value)
