"""What must hold after a chaos run, checked against the evidence it collected.

Each check adds `problems` (the test fails on any) and numbers for the summary table.
Repeats (an export uploaded twice, an email sent twice) are allowed only with a reason:
the process that made the request was killed (or exited) within `config.window` seconds
after it took effect, PostgreSQL was being restarted then, or the proxy swallowed the
answer (`lost_response`). Those are counted; repeats without a reason are problems.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import openpyxl
import psycopg
import pyarrow.parquet as pq
from standardwebhooks import Webhook, WebhookVerificationError

from app.exports.formats import FORMATS, CsvOptions, FileOptions
from app.exports.shaping import copy_statement
from tests.chaos.fleet import SIGTERM, PollerProcess
from tests.chaos.harness import BUCKET, STORAGE_PREFIX, Evidence, SentEmail, sent_email
from tests.chaos.proxy import LOST_RESPONSE, Exchange
from tests.chaos.workload import CANCELLED, FAILED, SUCCEEDED

UPLOAD_COMPLETIONS = ("PutObject", "CompleteMultipartUpload")
READY_SUBJECT = "Your export is ready"
FAILED_SUBJECT = "Your export could not be produced"
SIGTERM_SLACK = 5.0  # seconds past the grace a SIGTERM'd poller may take to be gone


@dataclass
class Findings:
    """The outcome of the checks."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def problem(self, text: str) -> None:
        """Record something that must not happen."""
        self.problems.append(text)


# Final states whose webhook every job must have sent (no job expires during a run).
ENDED = ("succeeded", "failed", "cancelled")


def verify(evidence: Evidence) -> Findings:
    """Run every check; the findings say what is wrong and how much chaos there was."""
    findings = Findings()
    if evidence.settle_problem:
        findings.problem(evidence.settle_problem)
    explainer = Explainer(evidence)
    _check_submissions(evidence, findings)
    _check_states(evidence, findings)
    _check_histories(evidence, findings)
    _check_results(evidence, findings)
    _check_objects(evidence, findings, explainer)
    _check_uploads(evidence, findings, explainer)
    _check_export_runs(evidence, findings, explainer)
    _check_emails(evidence, findings, explainer)
    _check_webhooks(evidence, findings)
    _check_pollers(evidence, findings)
    _scan_logs(evidence, findings)
    _measure_windows(evidence, findings)
    _count_chaos(evidence, findings)
    return findings


def _check_webhooks(evidence: Evidence, findings: Findings) -> None:
    """Every job that ended reached the (flaky) receiver at least once, signed, with its
    final state; every webhook-id always carried one body; repeats are counted."""
    webhook = Webhook(evidence.webhook_secret)
    delivered: set[tuple[str, str]] = set()
    bodies: dict[str, set[bytes]] = defaultdict(set)
    accepted = Counter()
    for call in evidence.webhook_calls:
        bodies[call.webhook_id].add(call.body)
        try:
            webhook.verify(call.body, call.headers)
        except WebhookVerificationError as exc:
            findings.problem(f"webhook {call.webhook_id}: signature does not verify ({exc})")
            continue
        if call.status < 300:
            accepted[call.webhook_id] += 1
            event = call.event
            delivered.add((event["data"]["id"], event["type"]))
    for webhook_id, seen in bodies.items():
        if len(seen) > 1:
            findings.problem(f"webhook {webhook_id} was sent with {len(seen)} different bodies")
    ended = [job for job in evidence.jobs.values() if job["state"] in ENDED]
    missing = [
        job["id"] for job in ended if (str(job["id"]), f"export.{job['state']}") not in delivered
    ]
    if missing:
        findings.problem(f"{len(missing)} jobs ended without their webhook: {missing[:5]}")
    findings.stats["webhooks"] = {
        "events": len(bodies),
        "posts": len(evidence.webhook_calls),
        "answered_500": sum(1 for c in evidence.webhook_calls if c.status >= 500),
        "delivered_twice": sum(1 for n in accepted.values() if n > 1),
    }


# --- who did what, when --------------------------------------------------------------------


class Explainer:
    """Finds why a request that took effect may have been made again."""

    def __init__(self, evidence: Evidence) -> None:
        self.config = evidence.config
        self.by_pid: dict[int, PollerProcess] = {p.pid: p for p in evidence.pollers}
        self.signals = [e for e in evidence.events if e.kind in ("sigkill", "sigterm")]
        self.pg_restarts = evidence.pg_restarts

    def reason(self, exchange: Exchange) -> str | None:
        """Why a repeat of `exchange` is expected, or None when nothing explains it."""
        window = self.config.window
        if exchange.fault == LOST_RESPONSE:
            return "lost_response"
        poller = self.by_pid.get(exchange.peer_pid or -1)
        if poller is not None:
            ended = poller.ended_at
            if ended is not None and exchange.started - 1.0 <= ended <= exchange.ended + window:
                return poller.signal or "exit"
        else:
            for event in self.signals:
                if exchange.started - 1.0 <= event.at <= exchange.ended + window:
                    return f"{event.kind} (poller unknown)"
        for stopped, back in self.pg_restarts:
            if stopped - window <= exchange.ended <= back + self.config.lease_seconds + window:
                return "pg_restart"
        return None

    def describe(self, exchange: Exchange) -> str:
        """The request and the fate of its poller, for a problem report."""
        poller = self.by_pid.get(exchange.peer_pid or -1)
        who = "an unknown process"
        if poller is not None:
            fate = "still running at the end"
            if poller.ended_at is not None:
                fate = (
                    f"{poller.signal or 'exited'} {poller.ended_at - exchange.ended:+.2f}s "
                    f"after (rc={poller.returncode})"
                )
            who = f"poller {poller.index} (pid {poller.pid}, {poller.log_file.name}, {fate})"
        return (
            f"{exchange.operation} {exchange.key or ''} status {exchange.status} "
            f"at {exchange.ended:.2f} by {who}"
            + (f", fault {exchange.fault}" if exchange.fault else "")
        )


def job_of_key(key: str | None) -> uuid.UUID | None:
    """The job id in an object key `<prefix>/<tenant>/<job_id>/<token>/<file>` (None if not
    one)."""
    if not key:
        return None
    parts = key.split("/")
    if len(parts) != 5 or parts[0] != STORAGE_PREFIX:
        return None
    try:
        return uuid.UUID(parts[2])
    except ValueError:
        return None


# --- the checks ----------------------------------------------------------------------------


def _check_submissions(evidence: Evidence, findings: Findings) -> None:
    api = evidence.api
    missing = [s.spec.index for s in evidence.submissions if s.job_id is None]
    if missing:
        findings.problem(f"{len(missing)} requests never got a 202: #{missing[:10]}")
    ids = [s.job_id for s in evidence.submissions if s.job_id is not None]
    if len(set(ids)) != len(ids):
        findings.problem("two requests with different Idempotency-Keys got the same job")
    if len(evidence.jobs) != len(set(ids)):
        findings.problem(
            f"{len(evidence.jobs)} jobs in the database for {len(set(ids))} accepted requests "
            "(a retried POST created a second job?)"
        )
    for text in api.other_errors:
        findings.problem(f"API: {text}")
    for text in api.bad_503s:
        findings.problem(f"API: {text}")
    for text in api.replay_checks:
        findings.problem(f"API idempotency: {text}")


def _expected_state(submission: Any) -> str:
    if submission.cancel_status == 200:
        return CANCELLED
    return submission.spec.expect


def _check_states(evidence: Evidence, findings: Findings) -> None:
    states = Counter(job["state"] for job in evidence.jobs.values())
    findings.stats["states"] = dict(states)
    for job in evidence.jobs.values():
        if job["state"] in ("queued", "running"):
            findings.problem(f"job {job['id']} ended the run {job['state']}")
    export_runs = {m["job_id"]: m for m in evidence.outbox if m["topic"] == "export.run"}
    unexpected_failures = 0
    for submission in evidence.submissions:
        job = evidence.jobs.get(submission.job_id) if submission.job_id else None
        if job is None:
            continue
        expected = _expected_state(submission)
        if job["state"] == expected:
            continue
        message = export_runs.get(job["id"], {})
        history = [
            f"#{e.get('attempt')}: {str(e.get('error'))[:160]}" for e in message.get("errors", [])
        ]
        text = (
            f"job {job['id']} ({submission.spec.label} {submission.spec.kind} "
            f"{submission.spec.format}) is {job['state']}, expected {expected}; "
            f"attempts {job['attempts']}/{message.get('max_attempts')}, "
            f"last_error: {(job['last_error'] or '')[:300]}; error history: {history[-4:]}"
        )
        if job["state"] == FAILED:
            unexpected_failures += 1
        findings.problem(text)
    findings.stats["unexpected_failures"] = unexpected_failures
    attempts = [job["attempts"] for job in evidence.jobs.values()]
    findings.stats["attempts_max"] = max(attempts, default=0)
    findings.stats["attempts_mean"] = sum(attempts) / len(attempts) if attempts else 0.0
    findings.stats["jobs_retried"] = sum(1 for a in attempts if a > 1)
    dead_notifies = [m for m in evidence.outbox if m["topic"] != "export.run" and m["dead_at"]]
    for message in dead_notifies:
        findings.problem(
            f"{message['topic']} message {message['id']} (job {message['job_id']}) died "
            f"after {message['attempts']} attempts: {(message['last_error'] or '')[:300]}"
        )


def _check_histories(evidence: Evidence, findings: Findings) -> None:
    """Every attempt that did not settle its message left one entry in the error history:
    its transient error, its hand-back at shutdown, or "lease expired" when its poller was
    killed or cut off. A done message has one entry fewer than attempts; a dead one, equal."""
    causes: Counter[str] = Counter()
    for message in evidence.outbox:
        errors = message["errors"] or []
        for entry in errors:
            text = str(entry.get("error", ""))
            causes[text.split(":", 1)[0] if ":" in text else text[:40]] += 1
        if message["done_at"] is None and message["dead_at"] is None:
            continue  # reported as unsettled elsewhere
        expected = message["attempts"] - (1 if message["done_at"] is not None else 0)
        if len(errors) != expected:
            findings.problem(
                f"{message['topic']} message {message['id']} (job {message['job_id']}): "
                f"{message['attempts']} attempts, {'done' if message['done_at'] else 'dead'}, "
                f"but {len(errors)} error history entries: "
                + "; ".join(f"#{e.get('attempt')} {str(e.get('error'))[:80]}" for e in errors)
            )
    findings.stats["history"] = dict(causes.most_common(8))


def _check_results(evidence: Evidence, findings: Findings) -> None:
    """Every succeeded job's object exists and is exactly what the query gives."""
    checked = 0
    by_id = {s.job_id: s for s in evidence.submissions}
    with psycopg.connect(evidence.database_url) as conn:
        for job in evidence.jobs.values():
            if job["state"] != SUCCEEDED:
                continue
            checked += 1
            problem = _check_one_result(evidence, conn, job, by_id.get(job["id"]))
            if problem:
                findings.problem(f"job {job['id']} ({job['kind']} {job['format']}): {problem}")
    findings.stats["results_verified"] = checked


def _check_one_result(
    evidence: Evidence, conn: psycopg.Connection, job: dict[str, Any], submission: Any
) -> str | None:
    parts = job["result_parts"] or []
    if len(parts) != 1 or parts[0]["key"] != job["result_key"]:
        return f"expected one part named by result_key, found {parts}"
    name = f"{STORAGE_PREFIX}/{job['result_key']}"
    if name not in evidence.objects:
        return f"its object {name} does not exist"
    response = evidence.s3.get_object(Bucket=BUCKET, Key=name)
    data = response["Body"].read()
    if len(data) != job["result_bytes"]:
        return f"object is {len(data)} bytes, result_bytes says {job['result_bytes']}"
    if hashlib.sha256(data).hexdigest() != job["result_sha256"]:
        return "object's sha256 differs from result_sha256"
    if response.get("ContentType") != job["result_content_type"]:
        return (
            f"object's Content-Type {response.get('ContentType')} != {job['result_content_type']}"
        )
    kind = evidence.catalog.get(job["kind"])
    if kind is None:
        return f"kind {job['kind']} not in the catalog"
    params = dict(job["params"])
    if job["kind"] == "slow_orders":
        params["pause"] = 0  # the same rows, without the wait
    fmt = FORMATS[job["format"]]
    columns = kind.describe(conn)
    options = FileOptions(timezone=job["timezone"])
    if fmt.typed:  # the same rows, as CSV text, to count and to compare the first column
        fmt = FORMATS["csv"]
        options = FileOptions(timezone=job["timezone"], csv=CsvOptions(header=False))
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT set_config('TimeZone', %s, true)", [job["timezone"]])
        with cur.copy(
            copy_statement(kind.query, columns, fmt, options),
            kind.bind(job["owner_id"], params),
        ) as copy:
            expected = b"".join(bytes(chunk) for chunk in copy)
    if job["format"] in ("xlsx", "parquet"):
        return _typed_result_problem(job, data, expected, evidence)
    text = gzip.decompress(data) if job["format"].endswith(".gz") else data
    rows = text.count(b"\n") if job["format"].startswith("jsonl") else (
        sum(1 for _ in csv.reader(io.StringIO(text.decode()))) - 1
    )
    if rows != job["result_rows"]:
        return f"object holds {rows} data rows, result_rows says {job['result_rows']}"
    if text != expected:
        return (
            f"content differs from the query's output ({len(text)} vs {len(expected)} bytes; "
            f"owner {job['owner_id']} has {evidence.owner_rows.get(job['owner_id'])} rows)"
        )
    return None


def _typed_result_problem(
    job: dict[str, Any], data: bytes, expected_csv: bytes, evidence: Evidence
) -> str | None:
    """An xlsx or parquet result, read back: its rows are the query's rows (by first column)."""
    expected = [row[0] for row in csv.reader(io.StringIO(expected_csv.decode()))]
    if job["format"] == "parquet":
        first = pq.read_table(io.BytesIO(data)).column(0).to_pylist()
    else:
        sheets = openpyxl.load_workbook(io.BytesIO(data), read_only=True).worksheets
        first = [row[0] for sheet in sheets for row in sheet.iter_rows(min_row=2, values_only=True)]
    if len(first) != job["result_rows"]:
        return f"file holds {len(first)} rows, result_rows says {job['result_rows']}"
    if [str(value) for value in first] != expected:
        return (
            f"first column differs from the query's output ({len(first)} vs {len(expected)} "
            f"rows; owner {job['owner_id']} has {evidence.owner_rows.get(job['owner_id'])} rows)"
        )
    return None


def _check_objects(evidence: Evidence, findings: Findings, explainer: Explainer) -> None:
    """Nothing in the bucket but the succeeded jobs' results (see `_documented_leftover`)."""
    results = {
        f"{STORAGE_PREFIX}/{job['result_key']}"
        for job in evidence.jobs.values()
        if job["state"] == SUCCEEDED and job["result_key"]
    }
    completions = {
        e.key: e for e in evidence.exchanges if e.operation in UPLOAD_COMPLETIONS and e.key
    }
    leftovers = sorted(set(evidence.objects) - results)
    documented = 0
    for key in leftovers:
        job = _job_of(evidence, key)
        origin = completions.get(key)
        made = explainer.describe(origin) if origin else "no upload of it seen by the proxy"
        text = (
            f"object left behind: {key} ({evidence.objects[key]} bytes; job "
            f"{job['state'] if job else 'unknown'}, result_key "
            f"{job['result_key'] if job else None}); made by {made}"
        )
        documented += _judge_leftover(findings, text, job, origin, explainer)
    findings.stats["orphan_objects"] = f"{len(leftovers) - documented} (+{documented} allowed)"


def _check_uploads(evidence: Evidence, findings: Findings, explainer: Explainer) -> None:
    """No multipart upload left in progress (see `_documented_leftover`)."""
    starts: dict[str, Exchange] = {}
    for exchange in evidence.exchanges:
        if exchange.operation == "CreateMultipartUpload" and exchange.reached_upstream:
            found = re.search(rb"<UploadId>([^<]+)</UploadId>", exchange.response_body or b"")
            if found:
                starts[found.group(1).decode()] = exchange
    documented = 0
    for upload in evidence.uploads:
        key = upload["Key"]
        job = _job_of(evidence, key)
        origin = starts.get(upload["UploadId"])
        state, attempts = (job["state"], job["attempts"]) if job else ("unknown", "?")
        text = (
            f"multipart upload left in progress: {key} (initiated {upload.get('Initiated')}; "
            f"job {state}, attempts {attempts}); "
            f"started by {explainer.describe(origin) if origin else 'unknown'}"
        )
        documented += _judge_leftover(findings, text, job, origin, explainer)
    findings.stats["unfinished_uploads"] = (
        f"{len(evidence.uploads) - documented} (+{documented} allowed)"
    )


def _job_of(evidence: Evidence, key: str) -> dict[str, Any] | None:
    """The job whose prefix holds `key`, if any."""
    job_id = job_of_key(key)
    return evidence.jobs.get(job_id) if job_id else None


def _judge_leftover(
    findings: Findings,
    text: str,
    job: dict[str, Any] | None,
    origin: Exchange | None,
    explainer: Explainer,
) -> bool:
    """File a leftover as a note (documented, True) or as a problem (False)."""
    if reason := _documented_leftover(job, origin, explainer):
        findings.notes.append(f"left to the lifecycle rule ({reason}): {text}")
        return True
    findings.problem(text)
    return False


def _documented_leftover(
    job: dict[str, Any] | None, origin: Exchange | None, explainer: Explainer
) -> str | None:
    """Why a leftover is allowed, or None.

    The attempt that owns a job clears its prefix when it starts and again, keeping its
    result, once the result is recorded. The README leaves two things to the bucket's
    lifecycle rule: what a killed attempt left of a job that then never ran again, and an
    upload that was still in flight when its poller died and landed after the owner's last
    clean-up. Also allowed: what a request whose answer the proxy swallowed created
    (lost_response, opt-in), which the poller never learned of."""
    if origin is not None and origin.fault == LOST_RESPONSE:
        return "its creation's answer was lost"
    if job is None or origin is None:
        return None
    poller = explainer.by_pid.get(origin.peer_pid or -1)
    if poller is None or poller.signal is None:
        return None  # its poller lived: it should have cleaned up after itself
    if job["state"] != SUCCEEDED:
        return f"its poller got a {poller.signal} and the job ended {job['state']}"
    if job["finished_at"] is not None and origin.ended >= job["finished_at"].timestamp():
        return f"its poller got a {poller.signal}; it landed after the job's last clean-up"
    return None


def _check_export_runs(evidence: Evidence, findings: Findings, explainer: Explainer) -> None:
    """An export ran to completion (its upload completed) more than once only for a reason.

    Every attempt uploads to a key of its own, so a run is a key whose PutObject or
    CompleteMultipartUpload took effect; the same key completed twice is one run whose
    request botocore repeated (a lost answer), not two runs.
    """
    by_job: dict[uuid.UUID, dict[str, list[Exchange]]] = defaultdict(lambda: defaultdict(list))
    for exchange in evidence.exchanges:
        if exchange.operation in UPLOAD_COMPLETIONS and exchange.reached_upstream:
            job_id = job_of_key(exchange.key)
            if job_id is not None and exchange.key:
                by_job[job_id][exchange.key].append(exchange)
    reasons: Counter[str] = Counter()
    runs_total = multipart = repeated_requests = 0
    for job_id, keys in by_job.items():
        job = evidence.jobs.get(job_id)
        if job is None:
            findings.problem(f"uploads for a job that does not exist: {job_id}")
            continue
        # One exchange per run: the one whose answer reached the poller, if any did.
        runs = {
            key: next((e for e in reversed(completions) if e.delivered), completions[-1])
            for key, completions in keys.items()
        }
        runs_total += len(runs)
        multipart += sum(1 for e in runs.values() if e.operation == "CompleteMultipartUpload")
        repeated_requests += sum(len(c) - 1 for c in keys.values())
        result = f"{STORAGE_PREFIX}/{job['result_key']}" if job["state"] == SUCCEEDED else None
        if result is not None and result not in runs:
            findings.problem(f"job {job_id}: the proxy saw no upload of its result {result}")
        ordered = sorted(runs.values(), key=lambda e: e.ended)
        keeper = runs.get(result or "", ordered[-1])
        for extra in (e for e in ordered if e is not keeper):
            reason = explainer.reason(extra)
            reasons[reason or "unexplained"] += 1
            if reason is None:
                findings.problem(
                    f"job {job_id} ({job['state']}) ran its export to completion again: "
                    f"{explainer.describe(extra)}; the kept run: {explainer.describe(keeper)}"
                )
            else:
                findings.notes.append(
                    f"repeat export of job {job_id} ({reason}): {explainer.describe(extra)}"
                )
    findings.stats["completed_uploads"] = runs_total
    findings.stats["completed_multipart"] = multipart
    findings.stats["repeated_completion_requests"] = repeated_requests
    findings.stats["duplicate_exports"] = dict(reasons)


def sent_emails(evidence: Evidence) -> list[SentEmail]:
    """Every SendEmail that SES accepted, with the job it was about."""
    return [
        sent_email(e)
        for e in evidence.exchanges
        if e.operation == "SendEmail" and e.reached_upstream
    ]


def _check_emails(evidence: Evidence, findings: Findings, explainer: Explainer) -> None:
    """One email per finished job with notify (ready or failed), repeats only for a reason."""
    sent = sent_emails(evidence)
    by_job: dict[uuid.UUID | None, list[SentEmail]] = defaultdict(list)
    for item in sent:
        by_job[item.job_id].append(item)
    if None in by_job:
        findings.problem(f"{len(by_job[None])} emails without an X-Export-Job-Id header")
    if evidence.moto_emails != len(sent):
        findings.problem(
            f"moto's SES counted {evidence.moto_emails} emails, the proxy saw {len(sent)} accepted"
        )
    reasons: Counter[str] = Counter()
    missing = 0
    for job in evidence.jobs.values():
        emails = sorted(by_job.get(job["id"], []), key=lambda s: s.exchange.ended)
        wanted = {SUCCEEDED: READY_SUBJECT, FAILED: FAILED_SUBJECT}.get(job["state"])
        if not job["notify_email"] or wanted is None:
            if emails:
                findings.problem(f"job {job['id']} ({job['state']}) got {len(emails)} emails")
            continue
        if not emails:
            missing += 1
            findings.problem(
                f"job {job['id']} ({job['state']}) got no email; email_status {job['email_status']}"
            )
            continue
        for item in emails:
            if item.subject != wanted:
                findings.problem(
                    f"job {job['id']} ({job['state']}) got an email titled {item.subject!r}"
                )
        if job["email_status"] != "sent" or job["notified_at"] is None:
            findings.problem(
                f"job {job['id']}: email_status {job['email_status']}, notified_at "
                f"{job['notified_at']} although SES accepted {len(emails)} emails"
            )
        keeper = next((e for e in emails if e.message_id == job["email_message_id"]), None)
        if keeper is None:
            findings.problem(
                f"job {job['id']}: recorded email_message_id {job['email_message_id']} is none "
                f"of the accepted ones {[e.message_id for e in emails]}"
            )
            keeper = emails[-1]
        for extra in (e for e in emails if e is not keeper):
            reason = explainer.reason(extra.exchange)
            reasons[reason or "unexplained"] += 1
            if reason is None:
                findings.problem(
                    f"job {job['id']} was emailed again without a kill in the window: "
                    f"{explainer.describe(extra.exchange)}; the recorded one: "
                    f"{explainer.describe(keeper.exchange)}"
                )
            else:
                findings.notes.append(
                    f"repeat email for job {job['id']} ({reason}): "
                    f"{explainer.describe(extra.exchange)}"
                )
    findings.stats["emails_sent"] = len(sent)
    findings.stats["emails_missing"] = missing
    findings.stats["duplicate_emails"] = dict(reasons)


def _check_pollers(evidence: Evidence, findings: Findings) -> None:
    """SIGTERM'd pollers exit 0 within the grace; no poller dies on its own."""
    grace = evidence.config.shutdown_grace
    chaos_sigterms = {e.pid for e in evidence.events if e.kind == "sigterm"}
    exits: list[tuple[int | None, float | None]] = []
    for poller in evidence.pollers:
        if poller.signal == SIGTERM:
            seconds = poller.exit_seconds
            if poller.pid in chaos_sigterms:
                exits.append((poller.returncode, seconds))
            if poller.returncode != 0 or seconds is None or seconds > grace + SIGTERM_SLACK:
                took = "never exited" if seconds is None else f"after {seconds:.1f}s"
                findings.problem(
                    f"poller {poller.index} (pid {poller.pid}) after SIGTERM: exit code "
                    f"{poller.returncode} {took} (grace {grace}s); log {poller.log_file}"
                )
        elif poller.signal is None and poller.exited_at is not None:
            findings.problem(
                f"poller {poller.index} (pid {poller.pid}) exited by itself with "
                f"{poller.returncode}; log {poller.log_file}: {_tail(poller, 5)}"
            )
    findings.stats["sigterm_exits"] = exits


def _tail(poller: PollerProcess, lines: int) -> str:
    try:
        return " | ".join(poller.log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


_VARIABLE = re.compile(r"[0-9a-f]{8}-[0-9a-f-]{27}|\b\d+(\.\d+)?\b|'[^']*'")


def _scan_logs(evidence: Evidence, findings: Findings) -> None:
    """Count the pollers' error and warning log lines by message (numbers and ids elided)."""
    levels: Counter[str] = Counter()
    messages: Counter[tuple[str, str]] = Counter()
    for poller in evidence.pollers:
        try:
            lines = poller.log_file.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                levels["not json"] += 1
                continue
            level = entry.get("level", "?")
            levels[level] += 1
            if level in ("warning", "error", "critical"):
                text = " ".join(_VARIABLE.sub("…", str(entry.get("message", ""))).split())[:110]
                messages[(level, text)] += 1
    findings.stats["log_levels"] = dict(levels)
    findings.stats["log_messages"] = messages.most_common(25)


def _measure_windows(evidence: Evidence, findings: Findings) -> None:
    """How long the at-least-once windows really were: from the endpoint accepting an upload
    (an email) to the poller logging that it committed it ("export finished", "email sent")."""
    logged: dict[str, float] = {}
    for poller in evidence.pollers:
        try:
            lines = poller.log_file.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            ref = entry.get("key") if entry.get("message") == "export finished" else None
            if entry.get("message") == "email sent":
                ref = entry.get("email_message_id")
            if ref:
                logged[str(ref)] = dt.datetime.fromisoformat(entry["timestamp"]).timestamp()
    uploads, emails = [], []
    for exchange in evidence.exchanges:
        if not exchange.reached_upstream:
            continue
        if exchange.operation in UPLOAD_COMPLETIONS and exchange.key:
            at = logged.get(exchange.key.removeprefix(f"{STORAGE_PREFIX}/"))
            if at is not None:
                uploads.append(at - exchange.ended)
        elif exchange.operation == "SendEmail":
            at = logged.get(str(sent_email(exchange).message_id))
            if at is not None:
                emails.append(at - exchange.ended)
    findings.stats["window_export"] = _spread(uploads)
    findings.stats["window_email"] = _spread(emails)


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return (
        f"n {len(values)}, p50 {pick(0.5) * 1000:.0f} ms, p99 {pick(0.99) * 1000:.0f} ms, "
        f"max {values[-1] * 1000:.0f} ms"
    )


def _count_chaos(evidence: Evidence, findings: Findings) -> None:
    kinds = Counter(e.kind for e in evidence.events)
    findings.stats["events"] = dict(kinds)
    findings.stats["pollers_started"] = len(evidence.pollers)
    faults: Counter[str] = Counter()
    for exchange in evidence.exchanges:
        if exchange.fault:
            faults[f"{exchange.service}:{exchange.fault}"] += 1
    findings.stats["faults"] = dict(sorted(faults.items()))
    findings.stats["proxied_requests"] = len(evidence.exchanges)
    operations = Counter(e.operation for e in evidence.exchanges)
    findings.stats["operations"] = dict(operations.most_common())
    for event in evidence.events:
        if event.kind == "harness_error":
            findings.problem(f"{event.kind}: {event.detail}")
