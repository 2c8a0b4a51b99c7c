"""Datasette beside the relay: the same database file, the equivalent queries, at the client.

Each inbox URL of `bench query` is translated into Datasette's table JSON API with the
same meaning: the inbox's filters become column filters (`status__not=archived` for the
default view, `timestamp__gte` for a time preset), its ordering becomes `_sort_desc`, its
page size `_size=50`, and its search becomes `_search` in raw mode with the very FTS5
expression the relay runs (from `relay_app.inbox.search.parse_search`), against the same
contentless `messages_fts` index (declared in Datasette's metadata: `fts_table`, `fts_pk`).
Datasette keeps its defaults (it counts the filtered rows, within its 1 s time limit),
except that suggested facets are off: the relay's facet lists are cached, Datasette's
suggestions would be recomputed on every request.
Both servers run as processes of their own on 127.0.0.1 and are timed from one
keep-alive connection each, alternating server by server, p50 and p99 at the client.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from bench.tools.relay_http import Client, node_headers, operator_client, start_relay_on
from bench.tools.stats import percentile
from tests.support import free_port

TABLE = "/cluster_messages/messages.json"
PAGE = 50


def datasette_url(inbox_url: str, now: float) -> str:
    """The Datasette table-API URL meaning the same as an inbox URL."""
    from relay_app.inbox.filters import PRESETS, parse_view
    from relay_app.inbox.search import parse_search

    view = parse_view(dict(parse_qsl(urlsplit(inbox_url).query)))
    params: list[tuple[str, str]] = []
    if view.status == "inbox":
        params.append(("status__not", "archived"))
    elif view.status != "all":
        params.append(("status", view.status))
    for column, value in (
        ("role", view.role),
        ("agent_id", view.agent),
        ("node_id", view.node),
        ("priority", view.priority),
    ):
        if value is not None:
            params.append((column, value))
    if view.range in PRESETS:
        params.append(("timestamp__gte", repr(now - PRESETS[view.range])))
    search = parse_search(view.q) if view.q else None
    if search is not None:
        params += [("_search", search.match()), ("_searchmode", "raw"), ("_sort_desc", "id")]
    else:
        params.append(("_sort_desc", "timestamp"))
    params.append(("_size", str(PAGE)))
    return f"{TABLE}?{urlencode(params)}"


def start_datasette(
    db: Path, work: Path, timeout: float = 120.0
) -> tuple[subprocess.Popen[bytes], str]:
    """`datasette serve` on the database file (read-only use), with the FTS table declared."""
    work.mkdir(parents=True, exist_ok=True)
    metadata = {
        "databases": {
            db.stem: {"tables": {"messages": {"fts_table": "messages_fts", "fts_pk": "id"}}}
        }
    }
    (work / "metadata.json").write_text(json.dumps(metadata))
    port = free_port()
    args = [sys.executable, "-m", "datasette", "serve", str(db.resolve()), "--host", "127.0.0.1"]
    args += ["--port", str(port), "--metadata", str(work / "metadata.json")]
    args += ["--setting", "suggest_facets", "off", "--setting", "default_page_size", str(PAGE)]
    log = (work / "datasette.log").open("ab")
    proc = subprocess.Popen(args, stdout=log, stderr=log, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"datasette exited {proc.returncode}; see {work / 'datasette.log'}")
        try:
            Client(url).get_ms("/-/versions.json")
        except (OSError, RuntimeError):
            time.sleep(0.2)
            continue
        return proc, url
    proc.kill()
    raise RuntimeError(f"datasette did not answer within {timeout}s")


def check_answers(relay: Client, datasette: Client, db: Path, urls: Sequence[str]) -> None:
    """Both serve this very file (same row count), and both answer every URL with rows."""
    conn = sqlite3.connect(f"file:{db.resolve()}?mode=ro", uri=True)
    try:
        rows = int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    finally:
        conn.close()
    status, _, body = relay.request("GET", "/query/messages?limit=1", extra=node_headers())
    status_ds, _, body_ds = datasette.request("GET", f"{TABLE}?_size=1")
    counts = (json.loads(body).get("total"), json.loads(body_ds).get("filtered_table_rows_count"))
    if status != 200 or status_ds != 200 or counts != (rows, rows):
        raise RuntimeError(f"relay and datasette count {counts}, the file holds {rows} rows")
    for url in urls:
        relay.get_ms(url)
        status, _, body = datasette.request("GET", datasette_url(url, time.time()))
        if status != 200 or "rows" not in json.loads(body):
            raise RuntimeError(f"datasette could not answer {url}: {status} {body[:300]!r}")


def compare(
    data_dir: Path, work: Path, groups: Mapping[str, Sequence[str]], runs: int
) -> dict[str, Any]:
    """Time each group of inbox URLs on the relay and their equivalents on Datasette."""
    db = data_dir / "messages" / "cluster_messages.db"
    relay_daemon = start_relay_on(data_dir, work / "relay")
    ds_proc, ds_url = start_datasette(db, work / "datasette")
    relay, datasette = operator_client(relay_daemon.url), Client(ds_url)
    result: dict[str, Any] = {}
    try:
        check_answers(relay, datasette, db, [u for urls in groups.values() for u in urls])
        for name, urls in groups.items():
            ours: list[float] = []
            theirs: list[float] = []
            for url in urls:  # alternate URL by URL, so noise hits both alike
                ours += relay.time_gets([url], runs)
                theirs += datasette.time_gets([datasette_url(url, time.time())], runs)
            for who, samples in (("relay_client", ours), ("datasette", theirs)):
                result[f"{who}_{name}_p50_ms"] = round(percentile(samples, 50), 2)
                result[f"{who}_{name}_p99_ms"] = round(percentile(samples, 99), 2)
    finally:
        relay.close()
        datasette.close()
        relay_daemon.terminate()
        ds_proc.terminate()
        ds_proc.wait(30)
    return result
