"""export.run: stream the kind's query through COPY into storage, then finish the job.

The file is stored as one or more parts (poller/files); with more than one, a
manifest.json lists them, and the job's result_key names the manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
from collections.abc import Callable, Collection

import psycopg
from psycopg import Connection
from psycopg_pool import ConnectionPool

from app.exports import jobs
from app.exports.catalog import ExportKind
from app.exports.columns import Column, DescribeError, choose
from app.exports.formats import FORMATS
from app.exports.jobs import StoredPart
from app.exports.shaping import copy_statement
from app.http.render import timestamp
from app.platform.db import LeaseLost
from app.platform.errors import PermanentError
from app.platform.logs import bind_context
from app.platform.services import Services
from app.queue import outbox
from app.queue.outbox import Message
from app.storage import job_prefix
from poller import metrics
from poller.core.handler import Settled
from poller.core.lease import Lease, StopReason, WorkStopped
from poller.files import ExportParts, FileShape, manifest_key, part_key
from poller.files.copy_out import record_batches

log = logging.getLogger(__name__)


class ExportRun:
    """Runs one export attempt end to end; every job write is fenced on the attempt."""

    def __init__(self, services: Services, source_pool: ConnectionPool) -> None:
        self.services = services
        self.source_pool = source_pool

    def handle(self, lease: Lease) -> Settled:
        """Produce the file and finish the job, or raise (the poller decides what next).

        The message is completed in finish_export's transaction, with the job's result.
        """
        message = lease.message
        pool = self.services.pool
        with pool.connection() as conn:
            job = jobs.start_export(conn, message)
            if job is None:  # cancelled (or otherwise ended) before we got to it
                outbox.complete_message(conn, message)
                log.info("export skipped: job already ended", extra={"job_id": str(message.job_id)})
                return Settled.BY_HANDLER
        bind_context(tenant=job.tenant)  # for every later log line of this message
        if message.attempts > 1:
            self._discard_leftovers(job)
        kind = self.services.catalog.get(job.kind)
        if kind is None:
            raise PermanentError(f"export kind {job.kind!r} is not in the catalog any more")

        def save_progress(rows: int, bytes_: int) -> None:
            lease.check()
            with pool.connection() as conn:
                jobs.record_progress(conn, message, rows=rows, bytes_=bytes_)

        base = object_base(job)
        stored: list[str] = []  # every key written, to delete if the job does not take them
        try:
            result = self._export(job, kind, base, stored, save_progress, message.deadline_seconds)
        except jobs.ExportStopped as exc:  # a progress write found the job not running
            self._delete_orphans(stored)
            if self._settle_if_cancelled(message):
                return Settled.BY_HANDLER
            raise WorkStopped(StopReason.LEASE_LOST, str(exc)) from None
        except BaseException:
            self._delete_orphans(stored)
            raise
        try:
            with pool.connection() as conn:
                jobs.finish_export(
                    conn,
                    message,
                    result,
                    retention_seconds=self.services.settings.retention_seconds,
                )
        except LeaseLost:
            # The objects exist but the job does not point at them: don't leave them behind.
            self._delete_orphans(stored)
            # Cancelled after the last progress write: settle now, not when the lease
            # lapses (which would also count an attempt).
            if self._settle_if_cancelled(message):
                return Settled.BY_HANDLER
            raise
        except BaseException:
            self._delete_orphans(stored)
            raise
        # An upload of an earlier attempt may have landed after this one started (a request
        # already in flight when its poller died): the job's prefix holds its result only.
        self._discard_leftovers(job, keep=stored)
        metrics.EXPORTED_ROWS.inc(result.rows)
        metrics.EXPORTED_BYTES.inc(result.bytes)
        log.info(
            "export finished",
            extra={
                "job_id": str(job.id),
                "rows": result.rows,
                "bytes": result.bytes,
                "parts": len(result.parts),
                "key": result.key,
            },
        )
        return Settled.BY_HANDLER

    def _export(
        self,
        job: jobs.Job,
        kind: ExportKind,
        base: str,
        stored: list[str],
        on_progress: Callable[[int, int], None],
        deadline_seconds: float,
    ) -> jobs.ExportResult:
        """COPY the kind's query into storage, part by part, keys appended to `stored` as
        they are written; the result to record."""
        fmt = FORMATS[job.format]
        storage = self.services.storage
        parts: list[StoredPart] = []
        with self.source_pool.connection() as source, source.cursor() as cur:
            # The catalog query may only read, and may not run forever; its session's
            # time zone is the job's, and dates print the ISO way whatever the server says.
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(f"SET LOCAL statement_timeout = {int(deadline_seconds * 1000)}")
            cur.execute(
                "SELECT set_config('TimeZone', %s, true),"
                " set_config('DateStyle', 'ISO, YMD', true)",
                [job.timezone],
            )
            shape = FileShape(fmt, self._columns(source, kind, job), job.options, kind.name)
            try:
                with cur.copy(
                    copy_statement(kind.query, shape.columns, fmt, job.options),
                    kind.bind(job.owner_id, job.params, job.window),
                ) as copy:
                    for number, part in enumerate(
                        ExportParts(
                            record_batches(copy),
                            shape,
                            on_progress=on_progress,
                            gzip_level=self.services.settings.gzip_level,
                        ),
                        start=1,
                    ):
                        key = part_key(base, number, fmt)
                        stored.append(key)
                        storage.upload(key, part, fmt.content_type)  # type: ignore[arg-type]
                        parts.append(StoredPart(key, part.rows, part.bytes, part.sha256))
            except psycopg.errors.QueryCanceled as exc:
                # Running it again would take as long again: fail with a clear reason.
                raise PermanentError(
                    f"the export query ran past its deadline of {deadline_seconds:g} s "
                    f"(exports.topics) or was cancelled by an operator: {exc}"
                ) from exc
        manifest = None
        if len(parts) > 1:
            manifest = self._store_manifest(job, base, parts)
            stored.append(manifest.key)
        return jobs.ExportResult(tuple(parts), fmt.content_type, manifest)

    @staticmethod
    def _columns(source: Connection, kind: ExportKind, job: jobs.Job) -> tuple[Column, ...]:
        """The job's columns as the query gives them now (a type may have changed since
        the API checked the request, a column may have gone)."""
        try:
            return choose(kind.describe(source), job.columns)
        except DescribeError as exc:
            raise PermanentError(f"the export query cannot be described: {exc}") from None
        except KeyError as exc:
            raise PermanentError(
                f"column {exc.args[0]!r} is no longer in the output of kind {kind.name!r}"
            ) from None

    def _store_manifest(self, job: jobs.Job, base: str, parts: list[StoredPart]) -> StoredPart:
        """Write manifest.json: every part's key, rows, bytes and sha256, in order."""
        document = {
            "job_id": str(job.id),
            "kind": job.kind,
            "format": job.format,
            "content_type": FORMATS[job.format].content_type,
            "rows": sum(p.rows for p in parts),
            "bytes": sum(p.bytes for p in parts),
            "created_at": timestamp(job.created_at),
            "parts": [
                {"number": n, "key": p.key, "rows": p.rows, "bytes": p.bytes, "sha256": p.sha256}
                for n, p in enumerate(parts, start=1)
            ],
        }
        data = json.dumps(document, indent=2).encode() + b"\n"
        key = manifest_key(base)
        self.services.storage.upload(key, io.BytesIO(data), "application/json")
        return StoredPart(key, 0, len(data), hashlib.sha256(data).hexdigest())

    def _discard_leftovers(self, job: jobs.Job, keep: Collection[str] = ()) -> None:
        """Remove what earlier attempts left under the job's prefix (all but `keep`).

        A killed predecessor's half-done multipart upload, or a file it uploaded but never
        recorded, belongs to no one now that this attempt owns the job. Best effort: the
        bucket's lifecycle rule is the backstop.
        """
        try:
            removed = self.services.storage.discard(job_prefix(job.tenant, job.id), keep=keep)
        except Exception:
            log.warning(
                "could not discard earlier attempts' leftovers",
                exc_info=True,
                extra={"job_id": str(job.id)},
            )
            return
        if removed:
            log.info(
                "discarded an earlier attempt's leftovers",
                extra={"job_id": str(job.id), "removed": removed},
            )

    def _delete_orphans(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.services.storage.delete(key)
            except Exception:
                log.exception("could not delete orphaned export file", extra={"key": key})

    def _settle_if_cancelled(self, message: Message) -> bool:
        """If the job was cancelled, complete its message now (fenced) and say so: the
        message is settled, not lost. False when the job was not cancelled."""
        with self.services.pool.connection() as conn:
            job = jobs.find_job(conn, message.job_id)
            if job is None or job.state != "cancelled":
                return False
            outbox.complete_message(conn, message)
        log.info("export cancelled while running", extra={"job_id": str(job.id)})
        return True

    def retry(self, conn: Connection, message: Message, error: str, delay: float) -> None:
        """The job goes back to queued until its next attempt."""
        jobs.retry_export(conn, message, error, delay)

    def give_up(self, conn: Connection, message: Message, error: str) -> None:
        """The job failed for good; its owner gets a short failure email."""
        jobs.fail_export(conn, message, error)

    def handed_back(self, conn: Connection, message: Message) -> None:
        """The poller stopped mid-export: the job waits as queued for another poller."""
        jobs.requeue_handed_back(conn, message)


def object_base(job: jobs.Job) -> str:
    """Where the files go: by tenant and job, with a random part nobody can guess; the
    parts and the manifest are named under it (poller.files.part_key, manifest_key)."""
    try:
        prefix = job_prefix(job.tenant, job.id)
    except ValueError as exc:  # retrying cannot make the tenant's name storable
        raise PermanentError(str(exc)) from None
    return f"{prefix}{secrets.token_urlsafe(16)}"
