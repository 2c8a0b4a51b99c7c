"""What the tests share, and the benchmarks with them: real processes and what they need.

- `procs`: a relay or node as its own OS process (`Daemon`, `start_relay`, `start_node`),
  run from the checkout (`REPO`).
- `cluster`: a two-node cluster config with node tokens (`cluster`, `TOKENS`,
  `FAST_SYNC`) and `write_config_dir`, which writes it as relay.yaml and agents/.
- `ports`: `free_port`, for a daemon told its port before it starts.
- `waiting`: `wait_for`, polling a condition until a deadline.
- `proc_stats`: CPU and memory of another process from /proc.
- `partition`: a TCP forwarder that cuts and heals connections (`Partition`).
- `postgres`: a throwaway PostgreSQL server (`ThrowawayPostgres`; the `postgres_server`
  and `postgres_dsn` fixtures of tests/conftest.py).

`bench` imports this package; nothing here imports `bench`.
"""

from tests.support.cluster import FAST_SYNC, TOKENS, cluster, write_config_dir
from tests.support.partition import Partition
from tests.support.ports import free_port
from tests.support.proc_stats import CpuWindow, RssSampler, cpu_seconds, peak_rss_mb, rss_mb
from tests.support.procs import REPO, Daemon, start_node, start_relay
from tests.support.waiting import wait_for

__all__ = [
    "FAST_SYNC",
    "REPO",
    "TOKENS",
    "CpuWindow",
    "Daemon",
    "Partition",
    "RssSampler",
    "cluster",
    "cpu_seconds",
    "free_port",
    "peak_rss_mb",
    "rss_mb",
    "start_node",
    "start_relay",
    "wait_for",
    "write_config_dir",
]
