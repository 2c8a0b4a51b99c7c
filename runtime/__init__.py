"""Commander's Python runtime, in layers that import one way only.

- `runtime.core`: the kernel both sides stand on (envelope, errors, config, SQLite helpers,
  supervision, the HTTP front and WSGI serving, the daemon run loop, the relay client);
  it imports neither `actors` nor `relay_app`.
- `actors` (top-level): the node's actors, on the kernel.
- `runtime.node`: the node application above the actors (Node, agent API, node HTTP API,
  client, daemon, CLI).
- `relay_app` (top-level): the relay, on the kernel only.
- `runtime.quickstart`: `make run`, which drives both sides and may import both.
"""
