"""Which tenant (API client) the current request acts for."""

from __future__ import annotations

from flask import g

from app.http.problems import Problem
from app.storage import tenant_problem


def current_tenant() -> str:
    """The tenant of the current request; every job/schedule query is scoped by it.

    Set by app/http/auth.py from the request's API key. A /v1 route reached without it is
    a bug (fail closed): refuse rather than fall back to some tenant.
    """
    tenant = g.get("tenant")
    if tenant is None:
        raise RuntimeError("no authenticated tenant: the route is not behind app.http.auth")
    return tenant


def current_storing_tenant() -> str:
    """current_tenant(), for a request that queues work whose files it will store: a 403 if
    the tenant cannot name a storage folder (a key made before tenants were checked), so the
    request is refused now rather than its export failing after every retry."""
    tenant = current_tenant()
    if problem := tenant_problem(tenant):
        raise Problem(
            403,
            "tenant-unusable",
            "Tenant cannot store exports",
            f"This API key's tenant {tenant!r} cannot store files: it {problem}. "
            "Ask the operator for a key with another tenant name.",
        )
    return tenant
