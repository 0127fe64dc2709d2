"""What a running process holds on to: settings, pools, catalog, storage, link signer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg_pool import ConnectionPool

from app.exports.catalog import Catalog, CatalogError, load_catalog
from app.exports.links import LinkSigner
from app.platform import crypto
from app.platform.db import SESSION_OPTIONS, open_pool
from app.platform.settings import Settings
from app.storage import Storage, storage_from_settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The long-lived collaborators of the API and the poller, built once at start-up."""

    settings: Settings
    pool: ConnectionPool
    loaded_catalog: Catalog  # as parsed from the kind files, columns not yet described
    storage: Storage
    links: LinkSigner
    # Called by close(), last registered first: background parts tied to this process.
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _described: Catalog | None = None
    _describing: threading.Lock = field(default_factory=threading.Lock)

    @property
    def catalog(self) -> Catalog:
        """The catalog with every kind's output columns. Described at start-up, or, if the
        database did not answer then, by the first caller once it does (until then this
        raises psycopg.OperationalError: a 503 in the API, a retry in the poller)."""
        if self._described is None:
            with self._describing:
                if self._described is None:
                    self._described = describe_catalog(
                        self.loaded_catalog,
                        self.settings.source_database_url or self.settings.database_url,
                    )
        return self._described

    @classmethod
    def build(
        cls, settings: Settings, *, name: str, pool_size: int = 10, pool_timeout: float = 10.0
    ) -> Services:
        """Load and check the catalog first (a broken one stops start-up), connect, then
        describe the catalog's queries (later, if the database does not answer yet)."""
        catalog = load_catalog(settings.catalog_dir)
        crypto.configure(settings.encryption_keys)
        storage = storage_from_settings(settings)
        links = LinkSigner(settings.secret_key, settings.public_url, settings.retention_seconds)
        pool = open_pool(settings.database_url, name=name, max_size=pool_size, timeout=pool_timeout)
        services = cls(settings, pool, catalog, storage, links)
        try:
            services.catalog  # noqa: B018  # describe now: a kind that cannot be stops start-up
        except psycopg.OperationalError as exc:
            log.warning(
                "database not reachable: export kinds will be described when it is",
                extra={"error": str(exc).strip()},
            )
        except CatalogError:
            pool.close()
            raise
        return services

    def on_close(self, closer: Callable[[], None]) -> None:
        """Call `closer` when these services close (before the pool)."""
        self._closers.append(closer)

    def close(self, timeout: float = 5.0) -> None:
        """Stop what registered with on_close, then close the database pool, waiting at most
        `timeout` s for connections in use."""
        for closer in reversed(self._closers):
            closer()
        self.pool.close(timeout=timeout)


def describe_catalog(catalog: Catalog, source_url: str) -> Catalog:
    """`catalog` with every kind's output columns, read from the database the exports read;
    CatalogError naming each kind whose query cannot be described."""
    with psycopg.connect(source_url, options=SESSION_OPTIONS, connect_timeout=3) as conn:
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
