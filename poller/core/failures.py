"""The failure policy: run a message's handler and turn how it ended into an Outcome.

Transient errors (network, throttling, a lost database connection, anything unknown) are
retried after a back-off; permanent ones (bad input, a broken query, a deadline passed) and
the last attempt give up. Either is recorded fenced, by the topic's handler, in one
transaction; a record that cannot be made loses nothing: the lease lapses and the message
runs again.
"""

from __future__ import annotations

import logging

import psycopg
import psycopg_pool

from app.platform import monitoring
from app.platform.db import LeaseLost
from app.platform.errors import PermanentError, TransientError
from app.platform.lifecycle import describe
from app.queue import outbox
from app.queue.outbox import Message
from poller import metrics
from poller.core.backoff import Backoff
from poller.core.handler import Handler, Outcome, Settled
from poller.core.lease import Lease, StopReason, WorkStopped

log = logging.getLogger("poller.core")

# Database errors that a retry can outlive (connection lost, pool exhausted).
DATABASE_UNAVAILABLE = (psycopg.OperationalError, psycopg_pool.PoolTimeout)
# Errors in the SQL itself (syntax, missing column, bad cast, constraint): never transient.
SQL_MISTAKES = (
    psycopg.ProgrammingError,
    psycopg.DataError,
    psycopg.IntegrityError,
    psycopg.NotSupportedError,
)


class FailurePolicy:
    """Runs handlers and records their failures as retries or give-ups (fenced)."""

    def __init__(self, pool: psycopg_pool.ConnectionPool, backoff: Backoff) -> None:
        self.pool = pool
        self.backoff = backoff

    def run(self, handler: Handler | None, lease: Lease) -> Outcome | None:
        """Handle one message. None: it finished and waits for the poller's batched
        completion (Settled.BY_POLLER); otherwise how it ended."""
        message = lease.message
        try:
            if handler is None:
                raise PermanentError(f"no handler for topic {message.topic!r}")
            if message.is_over_attempts:
                raise PermanentError(
                    f"gave up after {message.max_attempts} attempts; the last ended without "
                    "a result (lease expired: see the outbox error history)"
                )
            settled = handler.handle(lease)
            return None if settled is Settled.BY_POLLER else Outcome.DONE
        except LeaseLost as exc:
            log.warning("work dropped: its lease was lost (%s)", exc, extra=_context(message))
            return Outcome.DROPPED
        except WorkStopped as exc:
            level = logging.INFO if exc.reason is StopReason.SHUTDOWN else logging.WARNING
            log.log(level, "work stopped: %s", exc, extra=_context(message))
            return Outcome.DROPPED
        except PermanentError as exc:
            return self._record(handler, lease, exc, give_up=True)
        except (TransientError, *DATABASE_UNAVAILABLE) as exc:
            at_least = exc.min_delay if isinstance(exc, TransientError) else 0.0
            return self._record(handler, lease, exc, give_up=False, at_least=at_least)
        except SQL_MISTAKES as exc:
            # The query itself is wrong (a broken catalog kind, bad data): retrying won't help.
            return self._record(handler, lease, exc, give_up=True)
        except Exception as exc:
            # Unknown errors are retried (they may be passing), with their traceback logged.
            return self._record(handler, lease, exc, give_up=False, unexpected=True)

    def _record(
        self,
        handler: Handler | None,
        lease: Lease,
        exc: BaseException,
        *,
        give_up: bool,
        at_least: float = 0.0,
        unexpected: bool = False,
    ) -> Outcome:
        """Record the failure (fenced) and log it once: a retry as a WARNING, a death as
        one ERROR line "message dead"."""
        message = lease.message
        error = describe(exc)
        give_up = give_up or message.is_last_attempt
        monitoring.report_failed_attempt(message, error, give_up=give_up)
        delay = 0.0 if give_up else self.backoff.delay(message.attempts, at_least=at_least)
        try:
            with self.pool.connection() as conn:
                if handler is None:
                    outbox.bury_message(conn, message, error)
                elif give_up:
                    handler.give_up(conn, message, error)
                else:
                    handler.retry(conn, message, error, delay)
        except LeaseLost:
            log.warning("failure not recorded: lease already lost", extra=_context(message))
            return Outcome.DROPPED
        except Exception as record_failure:
            log.error(
                "failure not recorded (the message runs again when its lease lapses): %s",
                describe(record_failure),
                extra={**_context(message), "error": error},
            )
            return Outcome.DROPPED
        context = {**_context(message), "max_attempts": message.max_attempts, "error": error}
        if give_up:
            log.error("message dead", extra=context, exc_info=exc if unexpected else None)
            return Outcome.DEAD
        log.warning(
            "attempt failed; retrying in %.1fs",
            delay,
            extra=context,
            exc_info=exc if unexpected else None,
        )
        return Outcome.RETRY


def _context(message: Message) -> dict[str, object]:
    return {
        "message_id": message.id,
        "topic": message.topic,
        "job_id": str(message.job_id),
        "attempt": message.attempts,
    }


def count(topic: str, outcome: Outcome, n: int = 1) -> None:
    """Count `n` messages of `topic` that ended with `outcome`."""
    metrics.MESSAGES.labels(topic, outcome.value).inc(n)
