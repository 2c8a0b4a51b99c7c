"""What the benchmarks share that is not a benchmark (`python -m bench` lists only bench/*.py).

- `report`: the results page (docs/PERFORMANCE.md) with each figure beside its target.
- `relay_http`: a relay process on an existing data directory and a keep-alive timing client.
- `datasette`: Datasette on the same database, the peer of `bench query`.
- `stats`: percentiles.

The processes, configs and /proc readings shared with the tests are in `tests.support`.
"""
