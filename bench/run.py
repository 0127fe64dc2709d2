"""`make bench`: every benchmark next to its reference, in one run; prints a table and
writes bench/results.md. See bench/README.md for what each number means.

    .venv/bin/python bench/run.py              # the full run (~10 minutes)
    .venv/bin/python bench/run.py --quick      # small sizes (~2 minutes), for development
    .venv/bin/python bench/run.py --only dispatch,pickup --runs 5
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import _common as c
import dispatch
import enqueue
import export_stream
import noisy_neighbour
import psycopg

SECTIONS = (
    "dispatch", "pickup", "fairness", "enqueue", "http", "export", "schedules", "webhooks",
)  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    messages: int
    floor_messages: int
    pickup_samples: int
    enqueue_seconds: float
    http_seconds: float
    export_rows: tuple[int, ...]
    backlog: int  # the noisy neighbour's
    fair_samples: int
    fifo_samples: int  # each one waits for the whole backlog


FULL = Sizes(20_000, 2_000, 200, 5.0, 30.0, (1_000_000, 5_000_000), 5_000, 50, 1)
QUICK = Sizes(3_000, 300, 50, 2.0, 5.0, (100_000, 300_000), 500, 10, 1)


@dataclass
class Result:
    """One line of the summary: the median of the runs, its target and its reference."""

    benchmark: str
    metric: str
    values: list[float]
    unit: str
    target: str = ""
    reference: str = ""
    reference_values: list[float] = field(default_factory=list)
    higher_is_better: bool = True

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def reference_median(self) -> float | None:
        return statistics.median(self.reference_values) if self.reference_values else None

    def row(self) -> dict[str, str]:
        ref = self.reference_median
        return {
            "benchmark": self.benchmark,
            "metric": self.metric,
            "median": f"{_fmt(self.median)} {self.unit}",
            "runs": " / ".join(_fmt(v) for v in self.values),
            "target": self.target,
            "reference (median)": f"{self.reference}: {_fmt(ref)}" if ref is not None else "",
            "ratio": f"{self.median / ref:.2f}x" if ref else "",
        }


def _fmt(value: float) -> str:
    if value != value:  # nan
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def machine() -> list[str]:
    """Where the numbers come from: cores, CPU, memory, PostgreSQL and its settings, load."""
    cpu = "?"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_kib = int(info.readline().split()[1])
    with psycopg.connect(c.DEFAULT_SERVER) as conn:
        settings = {
            name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("server_version", "synchronous_commit", "fsync", "shared_buffers")
        }
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=c.ROOT
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=c.ROOT
        ).stdout.strip()
    except OSError:
        commit, dirty = "?", ""
    return [
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; code: {commit}"
        + (" plus uncommitted changes" if dirty else ""),
        f"- machine: {platform.node()}, {os.cpu_count()} cores ({cpu}), "
        f"{mem_kib / 1024 / 1024:.1f} GiB RAM, {platform.system()} {platform.release()}",
        f"- PostgreSQL {settings['server_version']} on the same machine "
        f"(synchronous_commit={settings['synchronous_commit']}, fsync={settings['fsync']}, "
        f"shared_buffers={settings['shared_buffers']}); Python {platform.python_version()}",
    ]


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def repeat(runs: int, what: str, measure: Callable[[], float]) -> list[float]:
    """`runs` measurements, each printed as it comes."""
    values = []
    for i in range(runs):
        value = measure()
        print(f"  {what} run {i + 1}/{runs}: {_fmt(value)}", file=sys.stderr, flush=True)
        values.append(value)
    return values


def bench_dispatch(url: str, settings, sizes: Sizes, runs: int) -> list[Result]:
    """Pollers, floor and ceiling, interleaved run by run so they share the same noise."""
    one, two, floor, ceiling, many, fifo = [], [], [], [], [], []
    fifo_settings = dataclasses.replace(settings, claim_order="fifo")
    for i in range(runs):
        print(f"  dispatch run {i + 1}/{runs}", file=sys.stderr, flush=True)
        floor.append(dispatch.floor_rate(url, sizes.floor_messages))
        ceiling.append(dispatch.ceiling_rate(url, sizes.messages, settings.poller_batch))
        one.append(dispatch.pollers_rate(settings, 1, sizes.messages))
        two.append(dispatch.pollers_rate(settings, 2, sizes.messages))
        many.append(dispatch.pollers_rate(settings, 1, sizes.messages, tenants=1000))
        fifo.append(dispatch.pollers_rate(fifo_settings, 1, sizes.messages, tenants=1000))
        print(
            f"    floor {floor[-1]:.0f}, ceiling {ceiling[-1]:.0f}, "
            f"1 poller {one[-1]:.0f}, 2 pollers {two[-1]:.0f}, 1,000 tenants "
            f"{many[-1]:.0f} (fifo {fifo[-1]:.0f}) msgs/s",
            file=sys.stderr,
        )
    name = f"1. dispatch ({sizes.messages:,} no-op msgs)"
    per = f"{settings.poller_threads} threads, batch {settings.poller_batch}"
    return [
        Result(name, f"1 poller process ({per})", one, "msgs/s", ">= 10,000",
               "claims + completion alone (ceiling)", ceiling),
        Result(name, "1 poller process", one, "msgs/s", "",
               "claim-one/complete-one loop (floor)", floor),
        Result(name, "2 poller processes", two, "msgs/s", "",
               "claims + completion alone (ceiling)", ceiling),
        Result(name, "1 poller, messages of 1,000 tenants", many, "msgs/s", ">= 10,000",
               "the same, FIFO claims (EXPORTS_CLAIM_ORDER=fifo)", fifo),
    ]  # fmt: skip


def bench_pickup(settings, sizes: Sizes, runs: int) -> list[Result]:
    p50, p99 = [], []
    for i in range(runs):
        latencies = dispatch.pickup_latencies(settings, sizes.pickup_samples)
        p50.append(c.percentile(latencies, 50) * 1000)
        p99.append(c.percentile(latencies, 99) * 1000)
        print(f"  pickup run {i + 1}/{runs}: p50 {p50[-1]:.2f} p99 {p99[-1]:.2f} ms",
              file=sys.stderr)  # fmt: skip
    name = f"2. pickup, idle poller ({sizes.pickup_samples} samples/run)"
    return [
        Result(name, "commit -> handler start p50", p50, "ms", "<= 3 ms",
               higher_is_better=False),
        Result(name, "commit -> handler start p99", p99, "ms", "<= 10 ms",
               f"poll interval {settings.poll_interval:g} s (without NOTIFY)",
               higher_is_better=False),
    ]  # fmt: skip


def bench_fairness(settings, sizes: Sizes) -> list[Result]:
    """Once, not per run: a FIFO sample lasts backlog x 100 ms / 4 threads."""
    fair = noisy_neighbour.b_waits(settings, "fair", sizes.fair_samples, sizes.backlog)
    fifo = noisy_neighbour.b_waits(settings, "fifo", sizes.fifo_samples, sizes.backlog)
    p50, p99 = c.percentile(fair, 50) * 1000, c.percentile(fair, 99) * 1000
    fifo_ms = [w * 1000 for w in fifo]
    print(f"  B's wait: fair p50 {p50:.0f} p99 {p99:.0f} ms, fifo {fifo_ms} ms", file=sys.stderr)
    work = noisy_neighbour.WORK_SECONDS * 1000
    name = (f"7. noisy neighbour: B's 1 export after A's {sizes.backlog:,} of {work:.0f} ms "
            f"({sizes.fair_samples} samples)")  # fmt: skip
    return [
        Result(name, "B's wait, commit -> start p50", [p50], "ms", "",
               "the same, FIFO claims", fifo_ms, higher_is_better=False),
        Result(name, "B's wait, commit -> start p99", [p99], "ms",
               f"<= {2 * work:.0f} ms (2 exports)", "the same, FIFO claims", fifo_ms,
               higher_is_better=False),
    ]  # fmt: skip


def bench_enqueue(url: str, sizes: Sizes, runs: int) -> list[Result]:
    seconds = sizes.enqueue_seconds
    single, four, pg1, pg4 = [], [], [], []
    for i in range(runs):
        single.append(enqueue.domain_rate(url, 1, seconds))
        pg1.append(enqueue.pgbench_rate(url, 1, seconds))
        four.append(enqueue.domain_rate(url, 4, seconds))
        pg4.append(enqueue.pgbench_rate(url, 4, seconds))
        print(f"  enqueue run {i + 1}/{runs}: 1 producer {single[-1]:.0f} (pgbench "
              f"{pg1[-1]:.0f}), 4 producers {four[-1]:.0f} (pgbench {pg4[-1]:.0f}) /s",
              file=sys.stderr)  # fmt: skip
    name = "3. enqueue: request_export"
    return [
        Result(name, "1 producer", single, "jobs/s", ">= 2,000",
               "pgbench 1-row insert, 1 client", pg1),
        Result(name, "4 producer processes", four, "jobs/s", "",
               "pgbench 1-row insert, 4 clients", pg4),
    ]  # fmt: skip


def bench_http(url: str, settings, sizes: Sizes, runs: int) -> list[Result]:
    rps, p50, p99, api_ms, db_ms = [], [], [], [], []
    enqueue.like_a_live_system(url)
    process, port = enqueue.start_api(settings)
    client = ""
    try:
        key = enqueue.api_key(url)
        api = c.process_tree(process.pid)  # gunicorn's arbiter and its workers
        for i in range(runs):
            # Where a request's CPU goes: the API's processes, and the whole PostgreSQL
            # server (backends, WAL writer, ...), per request answered.
            api_before, db_before = c.cpu_seconds(api), c.cpu_seconds(c.processes_named("postgres"))
            result = enqueue.http_load(port, key, sizes.http_seconds)
            api_after, db_after = c.cpu_seconds(api), c.cpu_seconds(c.processes_named("postgres"))
            answered = max(1.0, result["rps"] * sizes.http_seconds)
            api_ms.append(1000 * c.cpu_spent(api_before, api_after) / answered)
            db_ms.append(1000 * c.cpu_spent(db_before, db_after) / answered)
            client = result["client"]
            rps.append(result["rps"])
            p50.append(result["p50"])
            p99.append(result["p99"])
            print(f"  http run {i + 1}/{runs} ({client}): {rps[-1]:.0f} req/s, p50 "
                  f"{p50[-1]:.1f} p99 {p99[-1]:.1f} ms, {result['errors']} non-2xx; CPU a "
                  f"request: API {api_ms[-1]:.2f} ms, PostgreSQL {db_ms[-1]:.2f} ms",
                  file=sys.stderr)  # fmt: skip
    finally:
        c.stop_process(process)
    name = f"3. HTTP POST /v1/exports, 8 connections, {sizes.http_seconds:g} s ({client})"
    return [
        Result(name, "requests/s", rps, "req/s", ">= 1,000"),
        Result(name, "latency p50", p50, "ms", higher_is_better=False),
        Result(name, "latency p99", p99, "ms", "<= 25 ms", higher_is_better=False),
        Result(name, "CPU per request: API processes", api_ms, "ms", higher_is_better=False),
        Result(name, "CPU per request: PostgreSQL", db_ms, "ms", higher_is_better=False),
    ]


def bench_export(url: str, settings, sizes: Sizes, runs: int) -> tuple[list[Result], list]:
    results: list[Result] = []
    details = []
    export_stream.clear_queue(url)
    with export_stream.moto_s3() as endpoint:
        s3 = export_stream.s3_settings(settings, endpoint)
        for rows in sizes.export_rows:
            began = time.perf_counter()
            export_stream.seed_to(url, rows)
            print(f"  seeded {rows:,} rows in {time.perf_counter() - began:.0f}s",
                  file=sys.stderr)  # fmt: skip
            psql_gzip = [export_stream.psql_reference(url) for _ in range(runs)]
            psql_alone = [export_stream.psql_reference(url, gzip=False) for _ in range(runs)]
            for (gz, _), (raw, _) in zip(psql_gzip, psql_alone, strict=True):
                print(f"  psql | gzip {gz:.2f}s, psql > /dev/null {raw:.2f}s", file=sys.stderr)
            reference = [rows / s for s, _ in psql_gzip]
            ceiling = [rows / s for s, _ in psql_alone]
            gzip_bytes = psql_gzip[0][1]
            csv_gz: list[float] = []  # the null sink's rows/s: the other formats' reference
            for sink, sink_settings, flags in (
                ("S3 (moto)", s3, ()),
                ("null sink", settings, ("--null-storage",)),
                # The setting's trade (README): less CPU for ~1 % larger files.
                ("null sink, EXPORTS_GZIP_LEVEL=5", dataclasses.replace(settings, gzip_level=5),
                 ("--null-storage",)),
            ):  # fmt: skip
                measured, peak = export_stream.exports_on(
                    sink_settings, *flags, runs=runs, timeout=900
                )
                for m in measured:
                    print(f"  {sink} {rows:,} rows: {m['seconds']:.2f}s", file=sys.stderr)
                name = f"4. export {rows:,} rows csv.gz -> {sink}"
                rates = [m["rows"] / m["seconds"] for m in measured]
                results += [
                    Result(name, "rows/s", rates,
                           "rows/s", ">= 1.0x psql", "psql \\copy | gzip rows/s", reference),
                    Result(name, "rows/s", rates, "rows/s", "",
                           "ceiling: psql \\copy > /dev/null rows/s", ceiling),
                    Result(name, "output bytes", [m["bytes"] for m in measured], "B",
                           "<= 1.05x gzip -6", "psql \\copy | gzip -6 bytes", [gzip_bytes],
                           higher_is_better=False),
                    Result(name, "MB/s (gzipped output)",
                           [m["bytes"] / 1e6 / m["seconds"] for m in measured], "MB/s"),
                    Result(name, "poller peak RSS (VmHWM)", [peak / 1024], "MiB",
                           "<= 150 MiB, flat in size", higher_is_better=False),
                ]  # fmt: skip
                details.append(
                    {
                        "rows": f"{rows:,}",
                        "format": "csv.gz",
                        "sink": sink,
                        "output MB": f"{measured[0]['bytes'] / 1e6:.1f}",
                        "seconds (runs)": " / ".join(f"{m['seconds']:.2f}" for m in measured),
                        "peak RSS MiB": f"{peak / 1024:.0f}",
                    }
                )
                if sink == "null sink":
                    csv_gz = [m["rows"] / m["seconds"] for m in measured]
            results += _other_formats(settings, rows, sizes, runs, csv_gz, reference, details)
    return results, details


# Targets of the formats issue, as ratios to csv.gz in the same run (xlsx: reported only).
FORMAT_TARGETS = {"jsonl.gz": ">= 0.8x csv.gz", "parquet": ">= 0.5x csv.gz", "xlsx": ""}


def _other_formats(
    settings, rows: int, sizes: Sizes, runs: int, csv_gz: list[float], psql: list[float],
    details: list,
) -> list[Result]:  # fmt: skip
    """jsonl.gz, parquet and xlsx into the null sink, next to csv.gz and psql | gzip.

    xlsx is measured at the smallest size only: xlsxwriter writes ~20k rows/s, so 5M rows
    would take minutes per run.
    """
    results: list[Result] = []
    for fmt, target in FORMAT_TARGETS.items():
        if fmt == "xlsx" and rows != min(sizes.export_rows):
            continue
        measured, peak = export_stream.exports_on(
            settings, "--null-storage", runs=runs, timeout=1800, fmt=fmt
        )
        for m in measured:
            print(f"  {fmt} {rows:,} rows: {m['seconds']:.2f}s", file=sys.stderr)
        name = f"4. export {rows:,} rows {fmt} -> null sink"
        speed = [m["rows"] / m["seconds"] for m in measured]
        results += [
            Result(name, "rows/s", speed, "rows/s", target, "csv.gz rows/s", csv_gz),
            Result(name, "rows/s", speed, "rows/s", "", "psql \\copy | gzip rows/s", psql),
            Result(name, "poller peak RSS (VmHWM)", [peak / 1024], "MiB",
                   "<= 200 MiB, flat in size", higher_is_better=False),
        ]  # fmt: skip
        details.append(
            {
                "rows": f"{rows:,}",
                "format": fmt,
                "sink": "null sink",
                "output MB": f"{measured[0]['bytes'] / 1e6:.1f}",
                "seconds (runs)": " / ".join(f"{m['seconds']:.2f}" for m in measured),
                "peak RSS MiB": f"{peak / 1024:.0f}",
            }
        )
    return results


def bench_script(name: str, quick: bool) -> str:
    """A latency script's own output (bench/schedule_latency.py, bench/webhook_latency.py)."""
    script = Path(__file__).with_name(name)
    if not script.exists():
        note = f"bench/{name} is not there (yet): not measured."
        print(f"  {note}", file=sys.stderr)
        return note
    command = [sys.executable, str(script), *(["--quick"] if quick else [])]
    done = subprocess.run(command, capture_output=True, text=True, cwd=c.ROOT, timeout=900)
    if done.returncode != 0 and quick:  # it may not know --quick
        done = subprocess.run(command[:2], capture_output=True, text=True, cwd=c.ROOT,
                              timeout=900)  # fmt: skip
    if done.returncode != 0:
        error = done.stderr[-2000:]
        return f"bench/{name} failed ({done.returncode}):\n\n```\n{error}\n```"
    return f"`{' '.join(command[1:])}`:\n\n```\n{done.stdout.strip()}\n```"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma separated sections")
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("results.md"))
    c.add_server_option(parser)
    args = parser.parse_args()
    only = set(args.only.split(","))
    if unknown := only - set(SECTIONS):
        parser.error(f"unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    c.quiet_logs()
    sizes = QUICK if args.quick else FULL
    # What the production poller runs with (deploy/ecs-task-poller.json): see README.
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", "1048576")
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    head = machine()
    load_before = load()
    print("\n".join(head), file=sys.stderr)
    started = time.monotonic()
    results: list[Result] = []
    export_details: list = []
    schedules = ""
    with c.scratch_database(args.server, keep=args.keep_db) as url, c.workdir() as folder:
        settings = dataclasses.replace(c.bench_settings(url, folder), metrics_port=0)
        if "dispatch" in only:
            print("1. dispatch", file=sys.stderr)
            results += bench_dispatch(url, settings, sizes, args.runs)
        if "pickup" in only:
            print("2. pickup latency", file=sys.stderr)
            results += bench_pickup(settings, sizes, args.runs)
        if "fairness" in only:
            print("7. noisy neighbour", file=sys.stderr)
            results += bench_fairness(settings, sizes)
        if "enqueue" in only:
            print("3. enqueue", file=sys.stderr)
            results += bench_enqueue(url, sizes, args.runs)
        if "http" in only:
            print("3. HTTP", file=sys.stderr)
            results += bench_http(url, settings, sizes, args.runs)
        if "export" in only:
            print("4. export streaming", file=sys.stderr)
            more, export_details = bench_export(url, settings, sizes, args.runs)
            results += more
    if "schedules" in only:
        print("5. schedules", file=sys.stderr)
        schedules = bench_script("schedule_latency.py", args.quick)
    webhooks = ""
    if "webhooks" in only:
        print("6. webhooks", file=sys.stderr)
        webhooks = bench_script("webhook_latency.py", args.quick)
    minutes = (time.monotonic() - started) / 60
    rows = [r.row() for r in results]
    c.print_table(rows, title="results (medians of the runs)")
    if schedules:
        print(f"\n5. schedules: {schedules}")
    if webhooks:
        print(f"\n6. webhooks: {webhooks}")
    write_results(args, head, load_before, minutes, rows, export_details, schedules, webhooks)
    print(f"\nwrote {args.output}")


def write_results(
    args, head, load_before, minutes, rows, export_details, schedules, webhooks=""
) -> None:
    def table(items: list[dict[str, str]]) -> str:
        if not items:
            return "(none)"
        headers = list(items[0])
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(i[h] for h in headers) + " |" for i in items]
        return "\n".join(lines)

    command = "make bench" if not args.quick else "bench/run.py --quick"
    text = [
        "# Benchmark results",
        "",
        f"Written by `{command}` (`bench/run.py`, {args.runs} runs per figure, "
        f"{minutes:.1f} minutes). How to read them: bench/README.md.",
        "",
        *head,
        f"- load average before / after: {load_before} / {load()}",
        "",
        "## Summary",
        "",
        table(rows),
        "",
        "Ratios are measured / reference, both medians of the same run.",
    ]
    if export_details:
        text += ["", "## Exports in detail", "", table(export_details)]
    if schedules:
        text += ["", "## 5. Schedules", "", schedules]
    if webhooks:
        text += ["", "## 6. Webhooks", "", webhooks]
    args.output.write_text("\n".join(text) + "\n")


if __name__ == "__main__":
    main()
