"""Webhook delivery latency: from the commit that ends a job to the receiver, idle poller.

One `exports-poller` process runs with nothing else to do; a receiver on loopback (in this
process) records when each POST arrives. For each sample, one transaction queues an export
and cancels it (a job end: export.cancelled), the tenant's one endpoint subscribed; the
latency is the arrival time minus the time right after that commit. Samples run one at a
time, then a burst of --burst jobs ended in one transaction (first and last arrival).

    .venv/bin/python bench/webhook_latency.py                 # 100 samples, burst of 100
    .venv/bin/python bench/webhook_latency.py --quick         # 30 samples
"""

from __future__ import annotations

import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import _common as c
import psycopg

from app.exports import jobs
from app.notifications import webhooks


class Arrivals:
    """A loopback receiver that notes when each webhook-id arrived (time.time())."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.changed = threading.Condition()
        arrivals = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.time()
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(204)
                self.end_headers()
                with arrivals.changed:
                    arrivals.times[self.headers["webhook-id"]] = now
                    arrivals.changed.notify_all()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        """Until `count` webhooks have arrived."""
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.times) >= count, timeout):
                raise RuntimeError(f"only {len(self.times)} of {count} webhooks arrived")


def end_jobs(url: str, count: int) -> float:
    """Queue and cancel `count` exports in one transaction; the time right after commit."""
    request = jobs.ExportRequest("user-1", "demo_orders", {}, "csv", None)
    with psycopg.connect(url) as conn:
        for _ in range(count):
            job, _ = jobs.request_export(
                conn, "bench", request, idempotency_key=None, max_attempts=5
            )
            jobs.cancel_job(conn, "bench", job.id)
    return time.time()


def event_ids(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event_id FROM exports.webhook_deliveries ORDER BY id")
        return [row[0] for row in rows.fetchall()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="30 samples")
    c.add_server_option(parser)
    args = parser.parse_args()
    if args.quick:
        args.samples = 30
    c.quiet_logs()
    arrivals = Arrivals()
    receiver = f"http://127.0.0.1:{arrivals.server.server_address[1]}/hook"
    with c.scratch_database(args.server, keep=args.keep_db) as url, c.workdir() as work:
        settings = c.bench_settings(url, work)  # also sets the encryption keys
        with psycopg.connect(url) as conn:
            webhooks.create_endpoint(
                conn,
                "bench",
                webhooks.EndpointRequest(receiver, ("export.cancelled",), "bench", True),
                idempotency_key=None,
            )
        with c.pollers_in_processes(settings, 1) as (_, check):
            end_jobs(url, 1)  # warm-up: the poller is up once this arrives
            arrivals.wait_for(1, timeout=120)
            latencies = []
            for n in range(args.samples):
                committed = end_jobs(url, 1)
                arrivals.wait_for(n + 2)
                check()
                latencies.append(arrivals.times[event_ids(url)[-1]] - committed)
            before = len(arrivals.times)
            committed = end_jobs(url, args.burst)
            arrivals.wait_for(before + args.burst, timeout=120)
            burst = [arrivals.times[i] - committed for i in event_ids(url)[-args.burst :]]
    print(c.machine_line())
    c.print_table(
        [{"what": f"one job ended, {args.samples} samples", **c.summary_ms(latencies)}],
        title="Webhook delivery latency: job-ending commit → receiver (idle poller)",
    )
    c.print_table(
        [
            {
                "what": f"{args.burst} jobs ended in one commit",
                "first ms": f"{min(burst) * 1000:.1f}",
                "last ms": f"{max(burst) * 1000:.1f}",
            }
        ],
    )


if __name__ == "__main__":
    main()
