"""Which tenant (API client) the current request acts for."""

from __future__ import annotations

from flask import g


def current_tenant() -> str:
    """The tenant of the current request; every job/schedule query is scoped by it.

    Set by app/http/auth.py from the request's API key. A /v1 route reached without it is
    a bug (fail closed): refuse rather than fall back to some tenant.
    """
    tenant = g.get("tenant")
    if tenant is None:
        raise RuntimeError("no authenticated tenant: the route is not behind app.http.auth")
    return tenant
