"""The kernel: what the node's actors, the node application and the relay all stand on.

It imports neither `actors` nor `relay_app`. Its public API, by module:
"""

from runtime.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "errors": (
            "CommanderError",
            "ConfigError",
            "InvalidMessage",
            "CacheError",
            "CacheFull",
            "ActorUnavailable",
            "SupervisorGaveUp",
            "RelayError",
            "RelayUnavailable",
            "RelayUntrusted",
            "RelayRejected",
        ),
        "envelope": ("MessageEnvelope", "new_msg_id", "from_stored"),
        "ids": ("is_id", "ID_RULE", "MAX_ID"),
        "config": ("ClusterConfig", "AgentConfig", "NodeEntry", "RelaySettings", "load_config"),
        "sqlite": ("connect", "transaction", "migrate"),
        "supervisor": ("Supervisor",),
        "supervised": ("ChildSpec", "Restart", "SupervisedActor"),
        "child": ("ChildHandle",),
        "wsgi": ("ServerHandle", "serve_in_thread", "serve_unix_in_thread"),
        "daemon": ("Service", "run", "stop_on_signals"),
        "wire": ("batch_gzip", "message_json"),
        "relay_client": ("RelayClient", "RelayTarget"),
    },
)
