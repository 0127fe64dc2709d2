"""The /v1/webhook-endpoints API: where the app wants to hear that its exports ended, and
how each delivery went (app/notifications/webhooks.py does the work)."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify, request, url_for
from psycopg import Connection

from app.http import parsing, schemas
from app.http.problems import idempotency_conflict, not_found
from app.http.render import created_response, delivery_json, page, webhook_endpoint_json
from app.http.tenancy import current_tenant
from app.notifications import webhooks
from app.notifications.webhooks import Endpoint
from app.platform.services import current_services

bp = Blueprint("webhooks", __name__, url_prefix="/v1")


def _url_rules() -> dict:
    settings = current_services().settings
    return {
        "allowed": settings.allowed_webhook_networks,
        "require_https": settings.is_production,
    }


@bp.post("/webhook-endpoints")
def create_endpoint() -> Response:
    """Create an endpoint; 201 + Location + the endpoint with its secret (only now)."""
    wanted = parsing.endpoint_request(parsing.json_body(request), **_url_rules())
    key = parsing.idempotency_key(request)
    try:
        with current_services().pool.connection() as conn:
            endpoint, created = webhooks.create_endpoint(
                conn, current_tenant(), wanted, idempotency_key=key
            )
    except webhooks.EndpointIdempotencyConflict as exc:
        raise idempotency_conflict("endpoint", exc.endpoint.id) from None
    return created_response(
        webhook_endpoint_json(endpoint, with_secret=True),
        status=201,
        location=url_for("webhooks.get_endpoint", endpoint_id=endpoint.id),
        created=created,
    )


@bp.get("/webhook-endpoints")
def list_endpoints() -> Response:
    """The tenant's endpoints, newest first, one keyset page at a time."""
    args = parsing.list_arguments(schemas.PAGE_QUERY, request.args)
    with current_services().pool.connection() as conn:
        rows = webhooks.list_endpoints(
            conn, current_tenant(), limit=args["limit"] + 1, before=args["before"]
        )
    return page(rows, args["limit"], webhook_endpoint_json)


@bp.get("/webhook-endpoints/<uuid:endpoint_id>")
def get_endpoint(endpoint_id: uuid.UUID) -> Response:
    """One endpoint (never its secret)."""
    with current_services().pool.connection() as conn:
        return jsonify(webhook_endpoint_json(_endpoint_or_404(conn, endpoint_id)))


@bp.patch("/webhook-endpoints/<uuid:endpoint_id>")
def update_endpoint(endpoint_id: uuid.UUID) -> Response:
    """Change url, events, description or enabled."""
    changes = parsing.endpoint_changes(parsing.json_body(request), **_url_rules())
    with current_services().pool.connection() as conn:
        try:
            endpoint = webhooks.update_endpoint(conn, current_tenant(), endpoint_id, changes)
        except webhooks.EndpointNotFound:
            raise _no_endpoint(endpoint_id) from None
    return jsonify(webhook_endpoint_json(endpoint))


@bp.delete("/webhook-endpoints/<uuid:endpoint_id>")
def delete_endpoint(endpoint_id: uuid.UUID) -> Response:
    """Delete an endpoint and its deliveries (204); unknown: 404."""
    with current_services().pool.connection() as conn:
        try:
            webhooks.delete_endpoint(conn, current_tenant(), endpoint_id)
        except webhooks.EndpointNotFound:
            raise _no_endpoint(endpoint_id) from None
    return Response(status=204)


@bp.post("/webhook-endpoints/<uuid:endpoint_id>/rotate-secret")
def rotate_secret(endpoint_id: uuid.UUID) -> Response:
    """A new secret (in this response only); for 24 h deliveries are signed with both."""
    with current_services().pool.connection() as conn:
        try:
            endpoint = webhooks.rotate_secret(conn, current_tenant(), endpoint_id)
        except webhooks.EndpointNotFound:
            raise _no_endpoint(endpoint_id) from None
    return jsonify(webhook_endpoint_json(endpoint, with_secret=True))


@bp.post("/webhook-endpoints/<uuid:endpoint_id>/test")
def send_test(endpoint_id: uuid.UUID) -> Response:
    """Queue a webhook.test event to the endpoint; 202 + the delivery."""
    services = current_services()
    with services.pool.connection() as conn:
        try:
            delivery_id = webhooks.send_test_event(conn, current_tenant(), endpoint_id)
        except webhooks.EndpointNotFound:
            raise _no_endpoint(endpoint_id) from None
        row = webhooks.get_delivery(conn, current_tenant(), delivery_id)
    response = jsonify(delivery_json(row))
    response.status_code = 202
    return response


@bp.get("/webhook-endpoints/<uuid:endpoint_id>/deliveries")
def list_deliveries(endpoint_id: uuid.UUID) -> Response:
    """An endpoint's deliveries, newest first."""
    args = parsing.list_arguments(schemas.PAGE_QUERY, request.args, ids=int)
    with current_services().pool.connection() as conn:
        try:
            rows = webhooks.list_deliveries(
                conn,
                current_tenant(),
                endpoint_id,
                limit=args["limit"] + 1,
                before=args["before"],
            )
        except webhooks.EndpointNotFound:
            raise _no_endpoint(endpoint_id) from None
    return page(rows, args["limit"], delivery_json)


@bp.post("/webhook-deliveries/<int:delivery_id>/retry")
def retry_delivery(delivery_id: int) -> Response:
    """Deliver again now, with the same webhook-id; 202 + the delivery."""
    with current_services().pool.connection() as conn:
        try:
            row = webhooks.redeliver(conn, current_tenant(), delivery_id)
        except webhooks.DeliveryNotFound:
            raise not_found(f"There is no webhook delivery {delivery_id}.") from None
    response = jsonify(delivery_json(row))
    response.status_code = 202
    return response


def _endpoint_or_404(conn: Connection, endpoint_id: uuid.UUID) -> Endpoint:
    try:
        return webhooks.get_endpoint(conn, current_tenant(), endpoint_id)
    except webhooks.EndpointNotFound:
        raise _no_endpoint(endpoint_id) from None


def _no_endpoint(endpoint_id: uuid.UUID) -> Exception:
    return not_found(f"There is no webhook endpoint {endpoint_id}.")
