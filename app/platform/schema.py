"""The database schema: upgrade to head, read the head, and dump it as SQL.

sql/schema.sql is the current schema in one file (what `alembic upgrade head` makes), for
reading and reviewing; scripts/dump-schema rewrites it after a new migration and
tests/integration/test_schema.py fails when it is out of date.
"""

from __future__ import annotations

import re
import shutil
import subprocess  # nosec B404  # pg_dump only: a fixed program and arguments
from functools import cache

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from app.platform.settings import PROJECT_ROOT


def alembic_config(database_url: str | None = None) -> Config:
    """The project's Alembic config, optionally aimed at `database_url`."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["configure_logging"] = False
    if database_url:
        # configparser treats % as interpolation; URLs may contain escaped characters.
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    """Apply every migration up to head."""
    command.upgrade(alembic_config(database_url), "head")


@cache
def head_revision() -> str:
    """The newest migration in migrations/versions (what /readyz expects to find)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("migrations/versions holds no migration")
    return head


# pg_dump's lines that differ between dumps of one schema: its version, and the random key
# of the \restrict guard newer pg_dumps write.
_VARYING_LINES = re.compile(r"^(-- Dumped (from|by) |\\(un)?restrict ).*\n", re.MULTILINE)


def schema_sql(database_url: str) -> str:
    """The exports schema of `database_url` as pg_dump writes it (no owners, no grants)."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise RuntimeError("pg_dump is not on PATH (Debian: apt-get install postgresql-client)")
    dump = subprocess.run(  # nosec B603  # a fixed program and arguments, no shell
        [pg_dump, "--schema-only", "--no-owner", "--no-privileges", "--schema=exports",
         database_url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return _VARYING_LINES.sub("", dump)
