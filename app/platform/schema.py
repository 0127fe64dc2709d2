"""The database schema's version, as Alembic sees it: upgrade to head, read the head."""

from __future__ import annotations

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
