"""COPY ... TO STDOUT records, read from libpq many at a time.

`for record in copy` costs psycopg four Python frames per record (Copy.read, Connection.wait,
a generator, psycopg.generators.copy_from) around libpq's PQgetCopyData: about half of a
csv.gz export's client CPU at 1M rows (bench/README.md, "Export: where the time goes").
PostgreSQL sends one CopyData message per row, so there is no bigger unit to ask for. Here
one generator, driven by psycopg's own Connection.wait, takes every record libpq already
holds in one go and only waits on the socket when it holds none.

What it does by hand is what psycopg.generators.copy_from does (psycopg 3.3), kept the same:
- a record: PQgetCopyData(async) > 0;
- nothing buffered (0): wait until the socket is readable, then PQconsumeInput;
- the end (-1, also when the server reports an error mid-COPY): fetch the final result;
  it must be COMMAND_OK, else it is raised as the error psycopg would raise
  (psycopg.errors.QueryCanceled for a statement timeout or a cancel, etc.).
Cancelling half-way stays psycopg's: an exception out of the `cur.copy()` block makes its
Copy cancel the query and drain what is left, as it does for `for record in copy`. Once
the end has been read here, the connection is idle in its transaction and the Copy has
nothing left to do on leaving its block.
"""

from __future__ import annotations

from collections.abc import Iterator

from psycopg import Copy, errors, generators, pq
from psycopg.abc import PQGen
from psycopg.pq.abc import PGconn
from psycopg.waiting import Wait

# Records in one batch at most; libpq's buffer usually holds fewer.
BATCH_RECORDS = 1000

_COMMAND_OK = pq.ExecStatus.COMMAND_OK


def record_batches(copy: Copy) -> Iterator[list[memoryview]]:
    """The records of a COPY ... TO STDOUT, one per output row as `for record in copy`
    gives them, in batches of what libpq holds at once."""
    conn = copy.connection
    encoding = conn.info.encoding
    while True:
        batch: list[memoryview] = []
        ended = conn.wait(_buffered_records(conn.pgconn, batch, encoding))
        if batch:
            yield batch
        if ended:
            return


def _buffered_records(pgconn: PGconn, into: list[memoryview], encoding: str) -> PQGen[bool]:
    """Append the records libpq holds (waiting for the socket only while it holds none) to
    `into`; True once the COPY has ended and its final result was read."""
    get_copy_data = pgconn.get_copy_data
    append = into.append
    while len(into) < BATCH_RECORDS:
        nbytes, data = get_copy_data(1)  # async: 0 means no whole record buffered yet
        if nbytes > 0:
            append(data)  # a memoryview over libpq's buffer, freed with it
        elif nbytes == 0:
            if into:
                return False
            while not (yield Wait.R):
                continue
            pgconn.consume_input()
        else:
            results = yield from generators.fetch_many(pgconn)
            if len(results) != 1:
                raise errors.ProgrammingError("you cannot mix COPY with other operations")
            if results[0].status != _COMMAND_OK:
                raise errors.error_from_result(results[0], encoding=encoding)
            return True
    return False
