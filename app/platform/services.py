"""What a running process holds on to: settings, pools, catalog, storage, link signer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg_pool import ConnectionPool
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from app.exports.catalog import Catalog, CatalogError, load_catalog
from app.exports.links import LinkSigner
from app.platform import crypto
from app.platform.db import SESSION_OPTIONS, open_pool
from app.platform.settings import Settings
from app.storage import Storage, storage_from_settings


@dataclass
class Services:
    """The long-lived collaborators of the API and the poller, built once at start-up."""

    settings: Settings
    pool: ConnectionPool
    catalog: Catalog
    storage: Storage
    links: LinkSigner
    # Called by close(), last registered first: background parts tied to this process.
    _closers: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def build(
        cls, settings: Settings, *, name: str, pool_size: int = 10, pool_timeout: float = 10.0
    ) -> Services:
        """Load, check and describe the catalog first (a broken one stops start-up), then
        connect."""
        catalog = describe_catalog(
            load_catalog(settings.catalog_dir),
            settings.source_database_url or settings.database_url,
        )
        crypto.configure(settings.encryption_keys)
        storage = storage_from_settings(settings)
        links = LinkSigner(settings.secret_key, settings.public_url, settings.retention_seconds)
        pool = open_pool(settings.database_url, name=name, max_size=pool_size, timeout=pool_timeout)
        return cls(settings, pool, catalog, storage, links)

    def on_close(self, closer: Callable[[], None]) -> None:
        """Call `closer` when these services close (before the pool)."""
        self._closers.append(closer)

    def close(self, timeout: float = 5.0) -> None:
        """Stop what registered with on_close, then close the database pool, waiting at most
        `timeout` s for connections in use."""
        for closer in reversed(self._closers):
            closer()
        self.pool.close(timeout=timeout)


# Processes often start together with their database (compose, a deploy): wait for it a
# while before giving up, rather than crash-looping.
CATALOG_DB_WAIT_SECONDS = 30.0


@retry(
    retry=retry_if_exception_type(psycopg.OperationalError),
    stop=stop_after_delay(CATALOG_DB_WAIT_SECONDS),
    wait=wait_fixed(1.0),
    reraise=True,
)
def describe_catalog(catalog: Catalog, source_url: str) -> Catalog:
    """`catalog` with every kind's output columns, read from the database the exports read;
    CatalogError naming each kind whose query cannot be described."""
    with psycopg.connect(source_url, options=SESSION_OPTIONS, connect_timeout=5) as conn:
        described, problems = catalog.describe(conn)
    if problems:
        raise CatalogError(
            "export kinds whose query PostgreSQL cannot describe:\n  "
            + "\n  ".join(f"{name}: {problem}" for name, problem in problems.items())
        )
    return described


def current_services() -> Services:
    """The Services of the Flask app handling the current request."""
    from flask import current_app

    return current_app.extensions["exports"]
