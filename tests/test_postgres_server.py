"""The throwaway PostgreSQL the tests start: reachable, private, and gone afterwards."""

from __future__ import annotations

import psycopg

from tests.support.postgres import ThrowawayPostgres


def test_each_test_gets_an_empty_database_of_its_own(
    postgres_server: ThrowawayPostgres, postgres_dsn: str
) -> None:
    other = postgres_server.create_database()
    assert other != postgres_dsn
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
    with psycopg.connect(other) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)


def test_it_listens_on_loopback_only_and_runs_a_real_server(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        row = conn.execute(
            "SELECT current_setting('listen_addresses'), current_setting('server_version_num')"
        ).fetchone()
    assert row is not None
    assert row[0] == "127.0.0.1"
    assert int(row[1]) >= 130000


def test_a_stopped_server_leaves_nothing_behind() -> None:
    server = ThrowawayPostgres().start()
    root = server.root
    with psycopg.connect(server.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    server.stop()
    assert not root.exists()
