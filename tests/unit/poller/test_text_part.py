"""The export stream between COPY and storage: bytes, gzip, row counts, hash, progress."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import random
import threading
from collections.abc import Iterable, Iterator

import pytest
from poller.handlers.export_file import ExportFile

from poller.handlers import export_file

HEADER = b"order_id,placed_at,note\n"

# Quoted fields with newlines (LF and CRLF), doubled quotes, commas, empty quoted fields.
TRICKY_CSV = (
    HEADER
    + b"1,2024-01-01,plain\n"
    + b'2,2024-01-02,"two\nlines"\n'
    + b'3,2024-01-03,"she said ""hi""\nthen left"\n'
    + b'4,2024-01-04,""\n'
    + b'5,2024-01-05,"a,b,""c""\r\n\n"\n'
    + b'6,2024-01-06,""""\n'
    + b'7,,"ends with a quote """\n'
)


def csv_rows(data: bytes) -> int:
    """Data records according to Python's csv module (header excluded)."""
    return len(list(csv.reader(io.StringIO(data.decode(), newline="")))) - 1


def export(
    chunks: Iterable[bytes | memoryview],
    *,
    gzip: bool = False,
    progress_seconds: float = 3600.0,
) -> tuple[ExportFile, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []
    stream = ExportFile(
        chunks,
        gzip=gzip,
        on_progress=lambda rows, size: calls.append((rows, size)),
        progress_seconds=progress_seconds,
    )
    return stream, calls


def read_all(stream: ExportFile, size: int = 1000) -> bytes:
    out = bytearray()
    while piece := stream.read(size):
        out += piece
    return bytes(out)


def big_csv(rows: int = 20_000) -> bytes:
    rng = random.Random(7)
    lines = [HEADER]
    for i in range(rows):
        note = "".join(rng.choice('ab ,"\n') for _ in range(rng.randint(0, 30)))
        lines.append(f'{i},2024-01-01,"{note.replace(chr(34), chr(34) * 2)}"\n'.encode())
    return b"".join(lines)


def chunked(data: bytes, sizes: Iterable[int]) -> Iterator[bytes]:
    position = 0
    for size in sizes:
        if position >= len(data):
            return
        yield data[position : position + size]
        position += size
    if position < len(data):
        yield data[position:]


def test_sample_has_the_tricky_cases() -> None:
    assert csv_rows(TRICKY_CSV) == 7
    assert TRICKY_CSV.count(b"\n") > 8


def test_csv_output_is_the_copy_output() -> None:
    data = big_csv()
    stream, _ = export(chunked(data, [1, 7, 100, 65_536, 3, 200_000]))

    assert read_all(stream) == data


def test_gzip_output_gunzips_to_the_copy_output() -> None:
    data = big_csv()
    stream, _ = export(chunked(data, [1, 7, 100, 65_536, 3, 200_000]), gzip=True)

    output = read_all(stream)

    assert output[:2] == b"\x1f\x8b"
    assert gzip.decompress(output) == data


@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
def test_memoryview_chunks_are_accepted(use_gzip: bool) -> None:
    stream, _ = export([memoryview(TRICKY_CSV[:10]), memoryview(TRICKY_CSV[10:])], gzip=use_gzip)

    output = read_all(stream)

    assert (gzip.decompress(output) if use_gzip else output) == TRICKY_CSV
    assert stream.rows == 7


def test_rows_counts_csv_records_with_quoted_newlines_and_quotes() -> None:
    stream, _ = export([TRICKY_CSV])
    read_all(stream)

    assert stream.rows == csv_rows(TRICKY_CSV) == 7


@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
def test_rows_are_right_whatever_byte_a_chunk_boundary_falls_on(use_gzip: bool) -> None:
    expected = csv_rows(TRICKY_CSV)
    for split in range(len(TRICKY_CSV) + 1):
        stream, _ = export([TRICKY_CSV[:split], TRICKY_CSV[split:]], gzip=use_gzip)
        read_all(stream)
        assert stream.rows == expected, f"split at byte {split}"


def test_rows_are_right_with_every_chunk_boundary_at_once() -> None:
    stream, _ = export(TRICKY_CSV[i : i + 1] for i in range(len(TRICKY_CSV)))
    read_all(stream)

    assert stream.rows == csv_rows(TRICKY_CSV)


def test_rows_are_right_for_a_large_export_in_odd_chunks() -> None:
    data = big_csv()
    rng = random.Random(3)
    stream, _ = export(chunked(data, (rng.randint(1, 5000) for _ in range(10**6))))
    read_all(stream)

    assert stream.rows == csv_rows(data) == 20_000


@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
def test_sha256_and_bytes_describe_the_stored_output(use_gzip: bool) -> None:
    data = big_csv()
    stream, _ = export(chunked(data, [50_000] * 100), gzip=use_gzip)

    output = read_all(stream)

    assert stream.sha256 == hashlib.sha256(output).hexdigest()
    assert stream.bytes == len(output)


@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
@pytest.mark.parametrize("size", [1, 1000, 100_000])
def test_read_returns_exactly_n_bytes_until_the_last_read(use_gzip: bool, size: int) -> None:
    data = big_csv(5000) if size == 1 else big_csv()
    stream, _ = export(chunked(data, [1, 3, 40_000, 17] * 100), gzip=use_gzip)

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
    stream, calls = export(chunked(TRICKY_CSV, [9] * 100), gzip=use_gzip)

    output = read_all(stream)

    assert calls == [(7, len(output))]


def test_progress_is_reported_along_the_way_and_never_goes_backwards() -> None:
    data = big_csv()
    stream, calls = export(chunked(data, [10_000] * 1000), progress_seconds=0.0)

    output = read_all(stream)

    assert len(calls) > 1
    assert calls == sorted(calls)
    assert calls[-1] == (20_000, len(output))


class Cancelled(Exception):
    pass


def test_an_exception_from_on_progress_propagates_out_of_read() -> None:
    def cancel(rows: int, size: int) -> None:
        raise Cancelled

    stream = ExportFile([TRICKY_CSV], gzip=True, on_progress=cancel)

    with pytest.raises(Cancelled):
        stream.read(1000)


def test_cancelling_from_on_progress_stops_reading_the_copy_output() -> None:
    consumed = 0

    def copy_chunks() -> Iterator[bytes]:
        nonlocal consumed
        for _ in range(1000):
            consumed += 1
            yield b"1,2024-01-01,x\n" * 100

    def cancel(rows: int, size: int) -> None:
        raise Cancelled

    stream = ExportFile(copy_chunks(), gzip=False, on_progress=cancel, progress_seconds=0.0)

    with pytest.raises(Cancelled):
        read_all(stream)
    assert consumed < 1000


@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
def test_header_only_export_has_zero_rows(use_gzip: bool) -> None:
    stream, calls = export([HEADER], gzip=use_gzip)

    output = read_all(stream)

    assert stream.rows == 0
    assert (gzip.decompress(output) if use_gzip else output) == HEADER
    assert calls == [(0, len(output))]


def test_no_output_at_all_has_zero_rows() -> None:
    stream, calls = export([])

    assert read_all(stream) == b""
    assert stream.rows == 0
    assert calls == [(0, 0)]


def records(data: bytes) -> list[bytes]:
    """`data` cut at record ends, the way PostgreSQL sends COPY output: one record each."""
    pieces, start, in_quotes = [], 0, False
    for i, byte in enumerate(data):
        if byte == ord('"'):
            in_quotes = not in_quotes
        elif byte == ord("\n") and not in_quotes:
            pieces.append(data[start : i + 1])
            start = i + 1
    return pieces


@pytest.mark.parametrize("use_gzip", [False, True], ids=["csv", "gzip"])
def test_record_per_chunk_counts_chunks_as_records(use_gzip: bool) -> None:
    chunks = records(TRICKY_CSV)
    assert b"".join(chunks) == TRICKY_CSV
    stream = ExportFile(chunks, gzip=use_gzip, on_progress=lambda r, s: None, record_per_chunk=True)

    output = read_all(stream)

    assert stream.rows == csv_rows(TRICKY_CSV) == 7
    assert (gzip.decompress(output) if use_gzip else output) == TRICKY_CSV


def compression_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "export-gzip")


def test_the_source_is_read_at_most_a_few_blocks_ahead_of_the_reader() -> None:
    chunk = b"1,2024-01-01,x\n" * 1000
    consumed = 0

    def copy_chunks() -> Iterator[bytes]:
        nonlocal consumed
        while True:  # endless: only what read() asks for may be taken from it
            consumed += len(chunk)
            yield chunk

    with ExportFile(copy_chunks(), gzip=True, on_progress=lambda r, s: None) as stream:
        assert len(stream.read(1)) == 1

    blocks = export_file.BLOCKS_IN_FLIGHT + 1
    assert consumed <= blocks * (export_file.BLOCK_BYTES + len(chunk))


def test_closing_stops_the_compression_thread_also_half_way() -> None:
    before = compression_threads()
    stream, _ = export(chunked(big_csv(), [10_000] * 1000), gzip=True)
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
        ExportFile(
            (b"1,2024-01-01,x\n" * 100 for _ in range(10**6)),
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

    def flush(self) -> bytes:
        return b""


def test_a_compression_error_is_raised_by_read_and_the_thread_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = compression_threads()
    monkeypatch.setattr(export_file.zlib_ng, "compressobj", lambda *args: BrokenCompressor())
    stream, calls = export(chunked(big_csv(), [10_000] * 1000), gzip=True)

    with pytest.raises(MemoryError, match="no memory for zlib"):
        read_all(stream)
    stream.close()

    assert compression_threads() == before
    assert calls == []
