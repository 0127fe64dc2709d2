"""The exports API (Flask) and everything the API and the poller share."""

from __future__ import annotations

from flask import Flask

from app.platform.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """The Flask app; with no arguments, configured from the environment."""
    from app.http import (
        auth,
        console,
        downloads,
        exports,
        health,
        observability,
        openapi,
        ses_events,
    )
    from app.http import schedules as schedules_api
    from app.http import webhooks as webhooks_api
    from app.http.problems import register_problem_handlers
    from app.platform.services import Services

    settings = settings or Settings.from_env()
    app = Flask(__name__)
    # Bodies are read by app.http.parsing.read_body, which enforces this however they are
    # framed; MAX_CONTENT_LENGTH makes werkzeug refuse a Content-Length over it up front.
    app.config["EXPORTS_MAX_BODY_BYTES"] = settings.max_body_bytes
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # keep the documented field order
    # A request waits a bounded time for a connection, then gets a 503 with Retry-After.
    services = Services.build(
        settings, name="exports-api", pool_timeout=settings.api_db_wait_seconds
    )
    app.extensions["exports"] = services
    register_problem_handlers(app)
    app.register_blueprint(exports.bp)
    app.register_blueprint(downloads.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(observability.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(schedules_api.bp)
    app.register_blueprint(webhooks_api.bp)
    # Operators only, with a session of its own (not /v1's keys): app/http/console.py.
    app.register_blueprint(console.bp)
    # No API key (SNS cannot send one; it is signed instead): the auth hook exempts it.
    app.register_blueprint(ses_events.bp)
    observability.instrument(app)
    auth.protect(app)  # after the timer: refused requests are counted and timed too
    return app
