"""export.run: stream the kind's query through COPY into storage, then finish the job."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

import psycopg
from psycopg import Connection
from psycopg_pool import ConnectionPool

from app.exports import jobs
from app.exports.catalog import FORMATS, ExportKind
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
from poller.handlers.export_file import ExportFile

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

        key = object_key(job)
        try:
            export, rows = self._upload(job, kind, key, save_progress, message.deadline_seconds)
        except jobs.ExportStopped as exc:  # a progress write found the job not running
            if self._settle_if_cancelled(message):
                return Settled.BY_HANDLER
            raise WorkStopped(StopReason.LEASE_LOST, str(exc)) from None
        result = jobs.ExportResult(
            key=key,
            rows=rows,
            bytes=export.bytes,
            sha256=export.sha256,
            content_type=FORMATS[job.format],
        )
        try:
            with pool.connection() as conn:
                jobs.finish_export(
                    conn,
                    message,
                    result,
                    retention_seconds=self.services.settings.retention_seconds,
                )
        except LeaseLost:
            # The object exists but the job does not point at it: don't leave it behind.
            self._delete_orphan(key)
            # Cancelled after the last progress write: settle now, not when the lease
            # lapses (which would also count an attempt).
            if self._settle_if_cancelled(message):
                return Settled.BY_HANDLER
            raise
        except BaseException:
            self._delete_orphan(key)
            raise
        # An upload of an earlier attempt may have landed after this one started (a request
        # already in flight when its poller died): the job's prefix holds its result only.
        self._discard_leftovers(job, keep=key)
        metrics.EXPORTED_ROWS.inc(rows)
        metrics.EXPORTED_BYTES.inc(export.bytes)
        log.info(
            "export finished",
            extra={"job_id": str(job.id), "rows": rows, "bytes": export.bytes, "key": key},
        )
        return Settled.BY_HANDLER

    def _upload(
        self,
        job: jobs.Job,
        kind: ExportKind,
        key: str,
        on_progress: Callable[[int, int], None],
        deadline_seconds: float,
    ) -> tuple[ExportFile, int]:
        """COPY the kind's query into storage; (the uploaded file, its row count)."""
        with self.source_pool.connection() as source, source.cursor() as cur:
            # The catalog query may only read, and may not run forever.
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(f"SET LOCAL statement_timeout = {int(deadline_seconds * 1000)}")
            try:
                with (
                    cur.copy(kind.copy_statement(), kind.bind(job.owner_id, job.params)) as copy,
                    # Closed (its compression thread stopped) before the COPY ends, either way.
                    ExportFile(
                        copy,
                        gzip=job.format.endswith(".gz"),
                        on_progress=on_progress,
                        record_per_chunk=True,
                    ) as export,
                ):
                    self.services.storage.upload(key, export, FORMATS[job.format])
            except psycopg.errors.QueryCanceled as exc:
                # Running it again would take as long again: fail with a clear reason.
                raise PermanentError(
                    f"the export query ran past its deadline of {deadline_seconds:g} s "
                    f"(exports.topics) or was cancelled by an operator: {exc}"
                ) from exc
            return export, cur.rowcount if cur.rowcount >= 0 else export.rows

    def _discard_leftovers(self, job: jobs.Job, keep: str | None = None) -> None:
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

    def _delete_orphan(self, key: str) -> None:
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


def object_key(job: jobs.Job) -> str:
    """Where the file goes: by tenant and job, with a random part nobody can guess."""
    try:
        prefix = job_prefix(job.tenant, job.id)
    except ValueError as exc:  # retrying cannot make the tenant's name storable
        raise PermanentError(str(exc)) from None
    return f"{prefix}{secrets.token_urlsafe(16)}.{job.format}"
