"""Which tenant (API client) the current request acts for."""

from __future__ import annotations

from app import jobs


def current_tenant() -> str:
    """The tenant of the current request; every job/schedule query is scoped by it."""
    # Until API clients authenticate, every caller is the default tenant.
    return jobs.DEFAULT_TENANT
