"""A text part between COPY and storage: bytes, gzip, row counts, hash, progress, limits."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import random
import threading
from collections.abc import Iterable, Iterator

import pytest

from poller.files import feed as feed_module
from poller.files import text as text_module
from poller.files.feed import RecordFeed
from poller.files.text import TextPart
from tests.support.batches import in_batches

HEADER = b"order_id,placed_at,note\n"

# Quoted fields with newlines (LF and CRLF), doubled quotes, commas, empty quoted fields.
TRICKY_RECORDS = [
    b"1,2024-01-01,plain\n",
    b'2,2024-01-02,"two\nlines"\n',
    b'3,2024-01-03,"she said ""hi""\nthen left"\n',
    b'4,2024-01-04,""\n',
    b'5,2024-01-05,"a,b,""c""\r\n\n"\n',
    b'6,2024-01-06,""""\n',
    b'7,,"ends with a quote """\n',
]
TRICKY_CSV = HEADER + b"".join(TRICKY_RECORDS)


def csv_rows(data: bytes) -> int:
    """Data records according to Python's csv module (header excluded)."""
    return len(list(csv.reader(io.StringIO(data.decode(), newline="")))) - 1


def part(
    records: Iterable[bytes | memoryview],
    *,
    gzip: bool = False,
    progress_seconds: float = 3600.0,
    max_bytes: int = text_module.UNLIMITED,
    preamble: bytes = HEADER,
) -> tuple[TextPart, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []
    stream = TextPart(
        RecordFeed(in_batches(records)),
        gzip=gzip,
        on_progress=lambda rows, size: calls.append((rows, size)),
        preamble=preamble,
        max_bytes=max_bytes,
        progress_seconds=progress_seconds,
    )
    return stream, calls


def read_all(stream: TextPart, size: int = 1000) -> bytes:
    out = bytearray()
    while piece := stream.read(size):
        out += piece
    return bytes(out)


def big_records(rows: int = 20_000, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    records = []
    for i in range(rows):
        note = "".join(rng.choice('ab ,"\nxyz0123') for _ in range(rng.randint(0, 60)))
        records.append(f'{i},2024-01-01,"{note.replace(chr(34), chr(34) * 2)}"\n'.encode())
    return records


def test_sample_has_the_tricky_cases() -> None:
    assert csv_rows(TRICKY_CSV) == len(TRICKY_RECORDS) == 7
    assert TRICKY_CSV.count(b"\n") > 8


def test_csv_output_is_the_preamble_and_the_records() -> None:
    records = big_records()
    stream, _ = part(records)

    assert read_all(stream) == HEADER + b"".join(records)
    assert stream.rows == 20_000


def test_gzip_output_gunzips_to_the_preamble_and_the_records() -> None:
    records = big_records()
    stream, _ = part(records, gzip=True)

    output = read_all(stream)

    assert output[:2] == b"\x1f\x8b"
    assert gzip.decompress(output) == HEADER + b"".join(records)


@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
def test_memoryview_records_are_accepted(use_gzip: bool) -> None:
    stream, _ = part([memoryview(r) for r in TRICKY_RECORDS], gzip=use_gzip)

    output = read_all(stream)

    assert (gzip.decompress(output) if use_gzip else output) == TRICKY_CSV
    assert stream.rows == 7


@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
def test_rows_count_records_with_quoted_newlines_and_quotes(use_gzip: bool) -> None:
    stream, _ = part(TRICKY_RECORDS, gzip=use_gzip)
    read_all(stream)

    assert stream.rows == csv_rows(TRICKY_CSV) == 7


@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
def test_sha256_and_bytes_describe_the_stored_output(use_gzip: bool) -> None:
    stream, _ = part(big_records(), gzip=use_gzip)

    output = read_all(stream)

    assert stream.sha256 == hashlib.sha256(output).hexdigest()
    assert stream.bytes == len(output)


@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
@pytest.mark.parametrize("size", [1, 1000, 100_000])
def test_read_returns_exactly_n_bytes_until_the_last_read(use_gzip: bool, size: int) -> None:
    stream, _ = part(big_records(2000 if size == 1 else 20_000), gzip=use_gzip)

    pieces: list[bytes] = []
    while piece := stream.read(size):
        pieces.append(piece)

    assert pieces
    assert all(len(p) == size for p in pieces[:-1])
    assert 0 < len(pieces[-1]) <= size
    assert stream.read(size) == b""
    assert sum(len(p) for p in pieces) == stream.bytes


@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
def test_progress_is_reported_at_the_end_with_the_final_counts(use_gzip: bool) -> None:
    stream, calls = part(TRICKY_RECORDS, gzip=use_gzip)

    output = read_all(stream)

    assert calls == [(7, len(output))]


def test_progress_is_reported_along_the_way_and_never_goes_backwards() -> None:
    stream, calls = part(big_records(), progress_seconds=0.0)

    output = read_all(stream)

    assert len(calls) > 1
    assert calls == sorted(calls)
    assert calls[-1] == (20_000, len(output))


class Cancelled(Exception):
    pass


def test_an_exception_from_on_progress_propagates_out_of_read() -> None:
    def cancel(rows: int, size: int) -> None:
        raise Cancelled

    stream = TextPart(RecordFeed(in_batches(TRICKY_RECORDS)), gzip=True, on_progress=cancel)

    with pytest.raises(Cancelled):
        stream.read(1000)


def test_cancelling_from_on_progress_stops_reading_the_copy_output() -> None:
    consumed = 0

    def copy_records() -> Iterator[bytes]:
        nonlocal consumed
        for _ in range(100_000):
            consumed += 1
            yield b"1,2024-01-01,x\n"

    def cancel(rows: int, size: int) -> None:
        raise Cancelled

    stream = TextPart(
        RecordFeed(in_batches(copy_records())),
        gzip=False,
        on_progress=cancel,
        progress_seconds=0.0,
    )

    with pytest.raises(Cancelled):
        read_all(stream)
    assert consumed < 100_000


@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
def test_header_only_export_has_zero_rows(use_gzip: bool) -> None:
    stream, calls = part([], gzip=use_gzip)

    output = read_all(stream)

    assert stream.rows == 0
    assert (gzip.decompress(output) if use_gzip else output) == HEADER
    assert calls == [(0, len(output))]


def test_no_output_at_all_has_zero_rows() -> None:
    stream, calls = part([], preamble=b"")

    assert read_all(stream) == b""
    assert stream.rows == 0
    assert calls == [(0, 0)]


def compression_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "export-gzip")


def test_the_source_is_read_at_most_a_few_blocks_ahead_of_the_reader() -> None:
    record = b"1,2024-01-01,x\n"
    consumed = 0

    def copy_records() -> Iterator[bytes]:
        nonlocal consumed
        while True:  # endless: only what read() asks for may be taken from it
            consumed += len(record)
            yield record

    feed = RecordFeed(in_batches(copy_records()))
    stream = TextPart(feed, gzip=True, on_progress=lambda r, s: None)
    with stream:
        assert len(stream.read(1)) == 1

    blocks = text_module.BLOCKS_IN_FLIGHT + 1
    assert consumed <= blocks * (feed_module.BLOCK_BYTES + len(record))


def test_closing_stops_the_compression_thread_also_half_way() -> None:
    before = compression_threads()
    stream, _ = part(big_records(), gzip=True)
    assert compression_threads() == before + 1
    stream.read(100)

    stream.close()

    assert compression_threads() == before
    assert stream.closed


def test_a_cancel_from_on_progress_stops_the_compression_thread_on_close() -> None:
    before = compression_threads()

    def cancel(rows: int, size: int) -> None:
        raise Cancelled

    with (
        pytest.raises(Cancelled),
        TextPart(
            RecordFeed(in_batches(b"1,2024-01-01,x\n" for _ in range(10**7))),
            gzip=True,
            on_progress=cancel,
            progress_seconds=0.0,
        ) as stream,
    ):
        read_all(stream)

    assert compression_threads() == before


class BrokenCompressor:
    """A zlib compressor that fails, as zlib does when it runs out of memory."""

    def compress(self, data: bytes) -> bytes:
        raise MemoryError("no memory for zlib")

    def flush(self, mode: int = 0) -> bytes:
        return b""


def test_a_compression_error_is_raised_by_read_and_the_thread_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = compression_threads()
    monkeypatch.setattr(text_module.zlib_ng, "compressobj", lambda *args: BrokenCompressor())
    stream, calls = part(big_records(), gzip=True)

    with pytest.raises(MemoryError, match="no memory for zlib"):
        read_all(stream)
    stream.close()

    assert compression_threads() == before
    assert calls == []


# --- parts: a part ends before the record that could take it past max_bytes ----------------


def split_into_parts(
    records: list[bytes], *, max_bytes: int, use_gzip: bool, batch: int = 7
) -> list[tuple[TextPart, bytes]]:
    feed = RecordFeed(in_batches(records, batch))
    parts = []
    while True:
        stream = TextPart(
            feed, gzip=use_gzip, on_progress=lambda r, s: None, preamble=HEADER, max_bytes=max_bytes
        )
        with stream:
            parts.append((stream, read_all(stream, 64 * 1024)))
        if not stream.full:
            return parts


@pytest.mark.parametrize("batch", [1, 1000], ids=["record-by-record", "batches"])
@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
def test_parts_stay_within_max_bytes_and_hold_every_record_once(use_gzip: bool, batch: int) -> None:
    # Random text compresses about 2:1, so a gzip part holds about twice the raw limit.
    # With batches of 1000 records (~70 kB) every part ends inside a batch.
    records = big_records(60_000, seed=11)
    limit = 400_000

    parts = split_into_parts(records, max_bytes=limit, use_gzip=use_gzip, batch=batch)

    assert len(parts) >= 3
    texts = [gzip.decompress(data) if use_gzip else data for _, data in parts]
    assert all(len(data) <= limit for _, data in parts)
    assert all(stream.bytes == len(data) for stream, data in parts)
    assert all(text.startswith(HEADER) for text in texts)  # each part a whole CSV file
    assert b"".join(text.removeprefix(HEADER) for text in texts) == b"".join(records)
    assert [stream.rows for stream, _ in parts] == [csv_rows(text) for text in texts]
    assert sum(stream.rows for stream, _ in parts) == 60_000
    # Parts are filled, not cut at the first block: all but the last hold most of the limit.
    assert all(len(data) > limit * 0.6 for _, data in parts[:-1])


def test_a_record_bigger_than_a_part_gets_a_part_of_its_own() -> None:
    huge = b'1,2024-01-01,"' + b"x" * 5000 + b'"\n'
    records = [b"0,2024-01-01,a\n", huge, b"2,2024-01-01,b\n"]

    parts = split_into_parts(records, max_bytes=1000, use_gzip=False)

    assert [stream.rows for stream, _ in parts] == [1, 1, 1]
    assert parts[1][1] == HEADER + huge
