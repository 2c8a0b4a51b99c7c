"""Schemathesis against a live process: every check's failure, and every error, collected.

COMMANDER_FUZZ_EXAMPLES sets the examples per operation and phase (CI default: small),
COMMANDER_FUZZ_SECONDS the budget of one run, COMMANDER_FUZZ_SEED the seed ("random"
for a new one each run).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from schemathesis.engine import events, from_schema

EXAMPLES = int(os.environ.get("COMMANDER_FUZZ_EXAMPLES", "12"))
# Within `make test`'s 15 minutes; the long exploration is a separate run (README).
SECONDS = int(os.environ.get("COMMANDER_FUZZ_SECONDS", "10"))
# A fixed seed keeps CI runs alike; COMMANDER_FUZZ_SEED=random explores new inputs.
_SEED = os.environ.get("COMMANDER_FUZZ_SEED", "20261201")
SEED = None if _SEED == "random" else int(_SEED)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "unsupported_method",
)

# A refusal of bad input: schemathesis's list plus 411 and 413 (a body without a length,
# a batch over relay.max_batch_messages). A 5xx is never one: not_a_server_error says so.
REFUSALS = [400, 401, 403, 404, 405, 406, 409, 411, 413, 415, 422, 428, 429]


@dataclass
class FuzzReport:
    """What one run found: failed checks (with the request) and errors of the run itself."""

    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    operations: set[str] = field(default_factory=set)
    stop_reason: str = ""


def config(base_url: str, auth: dict[str, Any], seconds: int = SECONDS) -> Any:
    """A schemathesis config: these checks, a few examples per operation, a time budget.

    `auth` gives a value per security scheme of the document, so schemathesis also
    tries each operation without it. The inbox's pages send a browser without a
    session to the login form (303), where an API would answer 401.
    """
    pages = ["/messages", "/messages/", "/messages/m/{msg_id}", "/messages/nodes",
             "/messages/files/{file_id}"]  # fmt: skip
    to_login = {"negative_data_rejection": {"expected-statuses": [303, *REFUSALS]}}
    return schemathesis.Config.from_dict(
        {
            "base-url": base_url,
            "auth": {"openapi": auth} if auth else {},
            "operations": [
                {"include-path": pages, "max-redirects": 0, "checks": to_login},
                # A multipart part is bytes: a "number" there is a file holding those digits,
                # which the relay rightly stores. Its other checks still run.
                {
                    "include-path": ["/sync/files"],
                    "checks": {"negative_data_rejection": {"enabled": False}},
                },
            ],
            "max-time": seconds,
            "request-timeout": 10,
            "generation": {"max-examples": EXAMPLES, "mode": "all"},
            "phases": {"stateful": {"enabled": False}},
            "checks": {
                "enabled": False,
                **{name: {"enabled": True} for name in CHECKS},
                "negative_data_rejection": {"enabled": True, "expected-statuses": REFUSALS},
            },
            "suppress-health-check": ["all"],
            **({"seed": SEED} if SEED is not None else {}),
        }
    )


def pin(document: Any, name: str, values: list[str]) -> Any:
    """The document with every property `name` narrowed to `values`, in place.

    The relay answers 403 to a message of another node: pinning node_id to the
    authenticated node lets generated messages be stored, then read back, listed
    and rendered in the inbox, where the deeper defects hide.
    """
    if isinstance(document, dict):
        properties = document.get("properties")
        if isinstance(properties, dict) and name in properties:
            properties[name] = {**properties[name], "enum": values}
        for value in document.values():
            pin(value, name, values)
    elif isinstance(document, list):
        for item in document:
            pin(item, name, values)
    return document


def fuzz(document: dict[str, Any], base_url: str, auth: dict[str, Any]) -> FuzzReport:
    """Run the examples, coverage and fuzzing phases against the process at base_url."""
    schema = schemathesis.openapi.from_dict(document, config=config(base_url, auth))
    report = FuzzReport()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record(report, event.recorder)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            report.errors.append(repr(getattr(event, "value", getattr(event, "exception", ""))))
        elif isinstance(event, events.EngineFinished):
            report.stop_reason = str(event.stop_reason)
            report.failures += [f"after run: {f.title}: {f.message}" for f in event.failures]
    return report


def _record(report: FuzzReport, recorder: Any) -> None:
    report.requests += len(recorder.interactions)
    if recorder.interactions:
        report.operations.add(recorder.label)
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.failure_info is None:
                continue
            interaction = recorder.interactions.get(case_id)
            request = interaction.request if interaction is not None else None
            sent = f"{request.method} {request.uri}" if request is not None else "?"
            failure = check.failure_info.failure
            report.failures.append(f"{check.name}: {sent}: {failure.title}: {failure.message}")
