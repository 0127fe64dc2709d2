"""COPY records grouped as poller.files.copy_out.record_batches hands them on."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from poller.files.feed import Record


def in_batches(records: Iterable[Record], size: int = 7) -> Iterator[list[Record]]:
    """`records` in lists of `size` (the last one shorter): a batch per libpq read."""
    source = iter(records)
    while batch := list(islice(source, size)):
        yield batch
