"""The node application: the `Node` of one machine's agents above their actors, the agent
API (in-process handles, the node HTTP API and its client), the daemon and its CLI."""

from runtime.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "node": ("Node", "NodeOptions"),
        "agent": ("AgentHandle",),
        "client": ("NodeClient", "NodeAdmin"),
        "daemon": ("main",),
    },
)
