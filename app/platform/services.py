"""What a running process holds on to: settings, pools, catalog, storage, link signer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from psycopg_pool import ConnectionPool

from app.exports.catalog import Catalog, load_catalog
from app.exports.links import LinkSigner
from app.platform import crypto
from app.platform.db import open_pool
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
        """Load and check the catalog first (a broken one stops start-up), then connect."""
        catalog = load_catalog(settings.catalog_dir)
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


def current_services() -> Services:
    """The Services of the Flask app handling the current request."""
    from flask import current_app

    return current_app.extensions["exports"]
