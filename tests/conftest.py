"""Fixtures shared by every test: a real database per test, the app, pollers, local AWS."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from app.platform import crypto
from app.platform.logs import make_handler
from app.platform.settings import PROJECT_ROOT, Settings
from app.tenancy import clients
from poller.core.dispatch import Poller
from poller.main import PollerProcess, build_poller

pytest_plugins = [
    "tests.support.database",
    "tests.support.aws",
    "tests.support.sns",
    "tests.support.api_server",
    "tests.support.webhook_receiver",
    "tests.support.browser",
]

TEST_KINDS = Path(__file__).parent / "support" / "kinds"
# Fixed, so the test's processes (API, pollers, CLI) share it; never a production key.
TEST_ENCRYPTION_KEY = "Agtc5iCMKo3FyoqE-LxNz3m-m8dnfxucEFiolWQyqyA="


@pytest.fixture(autouse=True, scope="session")
def vault() -> crypto.Vault:
    """The test processes' encryption keys (the API and pollers they start get the same),
    for tests that store or read addresses through the domain functions directly."""
    return crypto.configure((TEST_ENCRYPTION_KEY,))


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """The shipped export kinds plus the test-only ones (gated, slow, broken)."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    for source in [*(PROJECT_ROOT / "sql" / "exports").glob("*.sql"), *TEST_KINDS.glob("*.sql")]:
        shutil.copy(source, folder / source.name)
    return folder


@pytest.fixture
def settings(database_url: str, tmp_path: Path, catalog_dir: Path) -> Settings:
    """Local file storage and mail, short leases and back-offs so tests run fast."""
    return Settings(
        database_url=database_url,
        storage_url=f"file://{tmp_path / 'storage'}",
        mail_url=f"file://{tmp_path / 'mail'}",
        mail_from="exports@example.com",
        public_url="http://exports.test",
        secret_key="test-secret-key",
        env="test",
        catalog_dir=catalog_dir,
        lease_seconds=5.0,
        poll_interval=0.1,
        retry_base_seconds=0.05,
        retry_cap_seconds=0.2,
        # Tests queue many identical exports for one owner in a row; the quota and the
        # duplicate collapsing are switched on where they are tested (test_quotas.py).
        max_active_per_owner=0,
        dedupe_seconds=0,
        # Every request checks its key in the database, so a revocation shows at once; the
        # cache is tested in test_auth.py.
        api_key_cache_seconds=0,
        encryption_keys=(TEST_ENCRYPTION_KEY,),
    )


class BearerClient(FlaskClient):
    """A test client that sends the app's test API key (Authorization: Bearer) by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        key = self.application.config.get("TEST_API_KEY")
        if key:
            self.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"


def api_key(database_url: str, name: str, tenant: str) -> str:
    """A new API key for `tenant`, stored in the test database."""
    with psycopg.connect(database_url) as conn:
        return clients.create_client(conn, name, tenant)[1]


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    """The API, built by the app factory exactly as in production.

    Its test clients (app.test_client(), `client`) authenticate as tenant "default".
    """
    flask_app = create_app(settings)
    flask_app.config["TEST_API_KEY"] = api_key(settings.database_url, "tests", "default")
    flask_app.test_client_class = BearerClient
    yield flask_app
    flask_app.extensions["exports"].close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """An HTTP client for the API, authenticated as tenant "default"."""
    return app.test_client()


@pytest.fixture
def other_tenant_client(app: Flask, settings: Settings) -> FlaskClient:
    """An HTTP client for the same API, authenticated as another tenant ("other")."""
    other = app.test_client()
    key = api_key(settings.database_url, "other-tests", "other")
    other.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return other


@pytest.fixture
def start_poller(settings: Settings) -> Iterator[Callable[..., Poller]]:
    """Start real pollers on background threads; all stop at the end of the test.

    `start()` uses the test's settings; pass other settings and/or field overrides.
    """
    running: list[tuple[PollerProcess, threading.Thread]] = []

    def start(base: Settings | None = None, **overrides: object) -> Poller:
        built = build_poller(dataclasses.replace(base or settings, **overrides))
        thread = threading.Thread(
            target=built.poller.run, kwargs={"grace_seconds": 10}, daemon=True
        )
        thread.start()
        running.append((built, thread))
        return built.poller

    yield start
    for built, _ in running:
        built.poller.stop()
    for built, thread in running:
        thread.join(timeout=30)
        built.close()


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Every log line written during the test, as production writes them (JSON), parsed."""
    stream = io.StringIO()
    handler = make_handler("json", stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(old_level)
