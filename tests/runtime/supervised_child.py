"""A tiny daemon for the process tests: a supervisor, its children and the signal handlers.

Run as `python supervised_child.py serve` (two healthy children, runs until
SIGTERM) or `python supervised_child.py give-up` (one child whose on_start always
fails, so the supervisor gives up). Each child prints `started <name>` and
`stopped <name>` on stdout; logs go to stderr. The exit status is 1 when the
supervisor gave up, else 0, as the node daemon will do for systemd.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import pykka

from runtime.core.errors import SupervisorGaveUp
from runtime.core.signals import install_signal_handlers
from runtime.core.supervisor import ChildSpec, SupervisedActor, Supervisor


class Child(SupervisedActor):
    """Prints its life on stdout; fails in on_start when told to."""

    def __init__(self, name: str, *, broken: bool) -> None:
        super().__init__()
        self.name = name
        self.broken = broken

    def on_start(self) -> None:
        if self.broken:
            raise RuntimeError(f"{self.name} cannot start")
        print(f"started {self.name}", flush=True)

    def on_stop(self) -> None:
        print(f"stopped {self.name}", flush=True)

    def on_receive(self, message: Any) -> Any:
        return message


def spec(name: str, *, broken: bool = False) -> ChildSpec:
    """A spec starting a fresh `Child` each time."""

    def start() -> pykka.ActorRef[Any]:
        return Child.start(name, broken=broken)

    return ChildSpec(name, start)


def on_give_up(error: SupervisorGaveUp) -> None:
    """What the node daemon does: say why, then let main() exit non-zero."""
    print(f"gave up: {error}", flush=True)


def main(mode: str) -> int:
    """Run the supervisor until it stops; return the process exit status."""
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    supervisor = Supervisor(
        "child-process", max_restarts=2, backoff_base=0.01, on_give_up=on_give_up
    )
    supervisor.add(spec("first"))
    supervisor.add(spec("second", broken=mode == "give-up"))
    supervisor.add(spec("third"))
    install_signal_handlers(supervisor.stop)
    supervisor.start()
    print("ready", flush=True)
    supervisor.wait()
    return 1 if supervisor.gave_up else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
