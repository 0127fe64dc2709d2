"""record_batches: the same records as psycopg's own COPY iteration, the same errors, and a
connection left usable however the COPY ended (real PostgreSQL)."""

from __future__ import annotations

import psycopg
import pytest

from poller.files.copy_out import BATCH_RECORDS, record_batches

# Rows of varying size, one far bigger than libpq's read buffer, a NULL and an empty string.
VARIED = """
    COPY (
        SELECT g, CASE WHEN g = 1234 THEN repeat('x', 3000000) ELSE repeat('y', g % 50) END,
               CASE WHEN g % 7 = 0 THEN NULL ELSE '' END
        FROM generate_series(1, 5000) AS g
    ) TO STDOUT (FORMAT csv)
"""


def psycopg_records(conn: psycopg.Connection, statement: str) -> list[bytes]:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        return [bytes(record) for record in copy]


def our_records(conn: psycopg.Connection, statement: str) -> list[bytes]:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        return [bytes(record) for batch in record_batches(copy) for record in batch]


def test_gives_exactly_the_records_psycopg_gives(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        expected = psycopg_records(conn, VARIED)
        got = our_records(conn, VARIED)
        # The COPY ended cleanly: the same transaction goes on.
        assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
    assert len(got) == 5000 > BATCH_RECORDS
    assert got == expected
    assert len(got[1233]) > 3_000_000


def test_an_empty_result_has_no_records(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        assert our_records(conn, "COPY (SELECT 1 WHERE false) TO STDOUT") == []
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_an_error_half_way_is_raised_as_psycopg_raises_it(database_url: str) -> None:
    failing = "COPY (SELECT 1 / (3000 - g) FROM generate_series(1, 5000) AS g) TO STDOUT"
    with psycopg.connect(database_url) as conn:
        received = []
        with (
            pytest.raises(psycopg.errors.DivisionByZero),
            conn.cursor() as cur,
            cur.copy(failing) as copy,
        ):
            for batch in record_batches(copy):
                received += batch
        assert len(received) > 0  # rows before the failing one had arrived
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_statement_timeout_is_a_query_canceled(database_url: str) -> None:
    slow = "COPY (SELECT g, pg_sleep(0.01) FROM generate_series(1, 10000) AS g) TO STDOUT"
    with psycopg.connect(database_url) as conn:
        conn.execute("SET statement_timeout = 200")
        with pytest.raises(psycopg.errors.QueryCanceled):
            our_records(conn, slow)
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)


class Abandoned(Exception):
    pass


def test_leaving_half_way_cancels_the_copy_and_keeps_the_connection(database_url: str) -> None:
    endless = "COPY (SELECT g FROM generate_series(1, 100000000) AS g) TO STDOUT"
    with psycopg.connect(database_url) as conn:
        with pytest.raises(Abandoned), conn.cursor() as cur, cur.copy(endless) as copy:
            for number, _ in enumerate(record_batches(copy), start=1):
                if number == 10:
                    raise Abandoned  # what a lost lease or a cancel does to an export
        # Without the cancel, reaching this point would mean reading 100M rows.
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)
