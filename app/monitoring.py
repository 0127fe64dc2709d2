"""Error reporting: Sentry when SENTRY_DSN is set, nothing otherwise."""

from __future__ import annotations

import sentry_sdk

from app.settings import Settings


def init_sentry(settings: Settings) -> None:
    """Report unhandled errors and error logs to Sentry (Flask requests included)."""
    if not settings.sentry_dsn:
        return
    sentry_sdk.init(dsn=settings.sentry_dsn, environment=settings.env, send_default_pii=False)
