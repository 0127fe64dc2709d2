"""A real poller process for the benchmarks, with bench-only stand-ins swapped in.

`poller.main.build_poller(Settings.from_env())` builds the poller exactly as
`exports-poller` does (same threads, batch, pools, listener, heartbeat); then, on request:

    --noop          export.run gets a handler that does nothing and leaves completion to
                    the poller (Settled.BY_POLLER): what is left is the dispatch path itself
    --record        ... and it prints "<job_id> <unix time> <message id>" to stdout when it
                    starts
    --work SECONDS  ... after working (sleeping) this long, like a short export
    --null-storage  exports are streamed as usual but the bytes go nowhere (no upload)

SIGTERM stops it gracefully, as exports-poller does. Prints "ready" on stdout once the
poller runs, and its peak RSS ("vmhwm_kib <n>") on stdout when it exits.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Collection
from types import FrameType
from typing import Any, BinaryIO

from app.exports.topics import EXPORT_RUN
from app.platform.settings import Settings
from app.storage import Download
from poller.core.handler import Settled
from poller.core.lease import Lease
from poller.main import build_poller

READ_SIZE = 16 * 1024 * 1024  # what S3's multipart upload asks for: one part at a time


class NoopHandler:
    """Does no work; the poller completes the message (batched, fenced)."""

    def __init__(self, record: bool, work: float = 0.0) -> None:
        self.record = record
        self.work = work
        self._lock = threading.Lock()

    def handle(self, lease: Lease) -> Settled:
        """Optionally print when it started; then nothing (or `work` seconds of sleep)."""
        import time

        if self.record:
            message = lease.message
            line = f"{message.job_id} {time.time():.6f} {message.id}\n"
            with self._lock:
                sys.stdout.write(line)
                sys.stdout.flush()
        if self.work:
            time.sleep(self.work)  # the stand-in for an export's work
        return Settled.BY_POLLER

    def retry(self, conn: Any, message: Any, error: str, delay: float) -> None:
        """Not expected: a no-op does not fail."""
        from app.queue import outbox

        outbox.retry_message(conn, message, error, delay)

    def give_up(self, conn: Any, message: Any, error: str) -> None:
        """Not expected: a no-op does not fail."""
        from app.queue import outbox

        outbox.bury_message(conn, message, error)


class NullStorage:
    """Reads every upload to its end, part-sized reads like S3, and keeps nothing."""

    def upload(self, key: str, stream: BinaryIO, content_type: str) -> None:
        """Drain the stream."""
        while stream.read(READ_SIZE):
            pass

    def download(self, key: str, filename: str, content_type: str) -> Download:
        """Nothing is stored."""
        raise NotImplementedError

    def open(self, key: str) -> BinaryIO:
        """Nothing is stored."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Nothing is stored."""

    def discard(self, prefix: str, *, keep: Collection[str] = ()) -> int:
        """Nothing is stored."""
        return 0


def peak_rss_kib() -> int:
    """VmHWM of this process (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--noop", action="store_true")
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--null-storage", action="store_true")
    parser.add_argument("--work", type=float, default=0.0)
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    built = build_poller(settings)
    poller = built.poller
    handlers = dict(poller.handlers)
    if args.noop or args.record:
        handlers[EXPORT_RUN] = NoopHandler(record=args.record, work=args.work)
    if args.null_storage:
        handlers[EXPORT_RUN].services.storage = NullStorage()
    poller.handlers = handlers

    def on_signal(signum: int, frame: FrameType | None) -> None:
        poller.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("ready", flush=True)
    poller.run(grace_seconds=10)
    built.close(timeout=0.5)
    print(f"vmhwm_kib {peak_rss_kib()}", flush=True)


if __name__ == "__main__":
    main()
