"""Bearer API keys for /v1: every /v1 request names its client, which sets the tenant.

Fail closed: a hook on the whole app guards every path under /v1/, so a route added later
(schedules, ...) is protected without remembering to opt in. Public under /v1: the API's
description (the openapi blueprint: the document and its docs page) and SES events posted
by SNS (ses_events, which cannot send a key and checks the SNS message signature instead).
/d/<token> links, /healthz, /readyz and /metrics are outside /v1 and need no key. Operator
keys are refused here (403): they open the console (app/http/console.py), not /v1.

Each worker process remembers the keys it verified for EXPORTS_API_KEY_CACHE_SECONDS
(default 5), so most requests cost no query for their key. Revoking a key NOTIFYs every
worker, which forgets what it cached (clients.RevocationListener): a revoked key stops
working within milliseconds; only while a worker's listening connection is down can it
keep working there, for at most the cache's seconds.
"""

from __future__ import annotations

from flask import Flask, current_app, g, request

from app.http.problems import Problem
from app.platform.services import current_services
from app.tenancy import clients

PROTECTED_PREFIX = "/v1/"
PUBLIC_BLUEPRINTS = frozenset({"openapi", "ses_events"})
REALM = 'Bearer realm="exports"'
# app.extensions entry holding the process's clients.KeyCache.
KEY_CACHE = "exports.api_key_cache"


def protect(app: Flask) -> None:
    """Require a valid API key on /v1 requests; the key's tenant goes into flask.g.tenant."""
    app.before_request(require_api_key)
    services = app.extensions["exports"]
    cache = app.extensions[KEY_CACHE] = clients.KeyCache(services.settings.api_key_cache_seconds)
    if cache.seconds > 0:
        listener = clients.RevocationListener(services.settings.database_url, cache)
        listener.start()
        services.on_close(listener.stop)


def require_api_key() -> None:
    """401 problem+json (with WWW-Authenticate) unless the request carries a live key."""
    if not request.path.startswith(PROTECTED_PREFIX) or request.blueprint in PUBLIC_BLUEPRINTS:
        return
    if request.routing_exception is not None:
        # No route ran: let the 404/405 through. It reveals no more than the public
        # OpenAPI document, and a wrong method on a public path stays a 405.
        return
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise _unauthorized("Send an API key as 'Authorization: Bearer <key>'.", challenge=REALM)
    cache: clients.KeyCache = current_app.extensions[KEY_CACHE]
    client = cache.get(key)
    if client is None:
        with current_services().pool.connection() as conn:
            client = clients.authenticate(conn, key)
        if client is not None:
            cache.put(key, client)
    if client is None:
        raise _unauthorized(
            "The API key is not valid: unknown, revoked or mistyped.",
            challenge=f'{REALM}, error="invalid_token"',
        )
    if client.operator:
        raise Problem(
            403,
            "operator-key",
            "Operator key",
            "An operator key opens the console (/console/), not the tenant API: call /v1 "
            "with a tenant's key.",
        )
    g.tenant = client.tenant
    g.api_client = client.name


def _unauthorized(detail: str, *, challenge: str) -> Problem:
    return Problem(
        401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": challenge}
    )
