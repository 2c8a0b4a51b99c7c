"""`make run`: a relay and two nodes on 127.0.0.1 with demo agents (`python -m runtime.quickstart`).

`make run-cluster` (`python -m runtime.quickstart.cluster`): the same with a local
PostgreSQL and two relays on it (`cluster.py`, the server in `postgres.py`).

The one place that drives both sides, so the one package that imports both the node
application and `relay_app`.
"""

from runtime.core.lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {"run": ("main",)})
