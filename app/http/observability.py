"""GET /metrics, and the request counters and timings behind it."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, g, request

from app.metrics import HTTP_REQUESTS, HTTP_SECONDS, exposition
from app.services import current_services

bp = Blueprint("observability", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition."""
    return Response(exposition(current_services().pool), mimetype="text/plain; version=0.0.4")


def instrument(app: Flask) -> None:
    """Count and time every request by its route template (low cardinality)."""

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _record(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        HTTP_REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        started = g.get("request_started")
        if started is not None:
            HTTP_SECONDS.labels(request.method, endpoint).observe(time.perf_counter() - started)
        return response
