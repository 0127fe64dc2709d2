"""Demo data for the demo_orders export kind (local runs, tests and benchmarks)."""

from __future__ import annotations

from psycopg import Connection
from psycopg.rows import tuple_row

from app.platform.settings import PROJECT_ROOT

DEMO_SQL = PROJECT_ROOT / "sql" / "demo"


def create_demo_table(conn: Connection) -> None:
    """Create exports_demo.orders if it does not exist yet."""
    conn.execute((DEMO_SQL / "schema.sql").read_text())


def demo_table_empty(conn: Connection) -> bool:
    """True when exports_demo.orders holds no row."""
    with conn.cursor(row_factory=tuple_row) as cur:  # whatever rows `conn` makes
        row = cur.execute("SELECT NOT EXISTS (SELECT FROM exports_demo.orders)").fetchone()
    return bool(row and row[0])


def seed_demo_orders(conn: Connection, rows: int, owners: int = 3) -> None:
    """Add `rows` fake orders spread over owners user-1 .. user-`owners`."""
    conn.execute((DEMO_SQL / "seed.sql").read_text(), {"rows": rows, "owners": owners})
