"""GET /metrics, the request counters and timings behind it, request ids and request logs."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, g, has_request_context, request
from prometheus_client import Counter, Histogram

from app.platform import monitoring
from app.platform.logs import add_context_source, bind_context, request_id_from, unbind_context
from app.platform.metrics import exposition
from app.platform.services import current_services

log = logging.getLogger("exports.api")

# The API's own series (only the API process defines them). Labels from closed sets only:
# see instrument().
HTTP_REQUESTS = Counter(
    "exports_http_requests", "API requests answered.", ["method", "endpoint", "status"]
)
HTTP_SECONDS = Histogram(
    "exports_http_request_duration_seconds",
    "API request latency.",
    ["method", "endpoint", "status"],
)
bp = Blueprint("observability", __name__)

REQUEST_ID_HEADER = "X-Request-Id"
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition."""
    services = current_services()
    return Response(
        exposition(services.pool, services.settings.metrics_top_tenants),
        mimetype="text/plain; version=0.0.4",
    )


def instrument(app: Flask) -> None:
    """Count, time and log every request by its route template; give each a request id.

    The id is the caller's X-Request-Id when sane, else a new one; it is echoed in the
    response header and carried by every log line (and Sentry event) of the request.
    """
    add_context_source(_request_tenant)
    # Label values must come from closed sets: a label per request-chosen value would let
    # anyone grow /metrics without bound (`curl -X RT1X`, `-X RT2X`, … : issue 12).
    routed_methods = frozenset(m for rule in app.url_map.iter_rules() for m in rule.methods or ())

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.log_context_token = bind_context(request_id=g.request_id)
        monitoring.tag_request(g.request_id)

    @app.after_request
    def _record(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        method = request.method if request.method in routed_methods else "other"
        status = str(response.status_code)
        HTTP_REQUESTS.labels(method, endpoint, status).inc()
        started = g.get("request_started")
        seconds = time.perf_counter() - started if started is not None else 0.0
        if started is not None:
            HTTP_SECONDS.labels(method, endpoint, status).observe(seconds)
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        # Probes and scrapes come every few seconds: keep them out of INFO.
        level = logging.DEBUG if endpoint in _QUIET_ROUTES else logging.INFO
        log.log(
            level,
            "%s %s %s",
            request.method,
            endpoint,
            status,
            extra={"status": response.status_code, "duration_ms": round(seconds * 1000, 1)},
        )
        return response

    @app.teardown_request
    def _forget_request(exc: BaseException | None) -> None:
        token = g.pop("log_context_token", None)
        if token is not None:
            unbind_context(token)


def _request_tenant() -> dict[str, str | None]:
    """The authenticated tenant of the request being handled, for log lines."""
    if not has_request_context():
        return {}
    return {"tenant": g.get("tenant")}
