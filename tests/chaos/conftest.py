"""Fixtures of the chaos tests: a PostgreSQL cluster of their own, which they may restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.servers import PostgresCluster


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[PostgresCluster]:
    """A throwaway cluster on a free port (not the shared server): each run makes a database."""
    cluster = PostgresCluster().create()
    yield cluster
    cluster.destroy()
