"""What an actor needs of another actor: a mailbox (a pykka ActorRef or a supervisor handle)."""

from __future__ import annotations

from typing import Any, Protocol


class Mailbox(Protocol):
    """Something that accepts `tell` and `ask`, such as runtime.core.supervisor.ChildHandle."""

    def tell(self, message: Any) -> None:
        """Send without waiting."""

    def ask(self, message: Any, *, timeout: float | None = None) -> Any:
        """Send and wait for the answer."""
