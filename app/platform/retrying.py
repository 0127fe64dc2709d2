"""Short in-process retries for calls to S3, SES, SMTP and the database.

Backends first classify a failure as TransientError or PermanentError (app.platform.errors); only
transient ones are retried here, a few times within seconds. Longer outages are handled by
the outbox itself: the message becomes visible again after a stored back-off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from app.platform.errors import TransientError

T = TypeVar("T")

IN_PROCESS_ATTEMPTS = 3


def retry_transient(func: Callable[..., T]) -> Callable[..., T]:
    """Retry `func` on TransientError: 3 tries, 0.2 s then ~0.4 s apart; then re-raise."""
    return retry(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(IN_PROCESS_ATTEMPTS),
        wait=wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.2),
        reraise=True,
    )(func)
