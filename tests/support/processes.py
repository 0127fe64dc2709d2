"""Running the real `exports-poller` as a separate process, configured like the tests' one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.settings import PROJECT_ROOT, Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that make Settings.from_env() equal `settings`."""
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "EXPORTS_STORAGE_URL": settings.storage_url,
            "EXPORTS_MAIL_URL": settings.mail_url,
            "EXPORTS_MAIL_FROM": settings.mail_from,
            "EXPORTS_PUBLIC_URL": settings.public_url,
            "EXPORTS_SECRET_KEY": settings.secret_key,
            "EXPORTS_ENV": settings.env,
            "EXPORTS_CATALOG_DIR": str(settings.catalog_dir),
            "EXPORTS_LEASE_SECONDS": str(settings.lease_seconds),
            "EXPORTS_POLL_INTERVAL": str(settings.poll_interval),
            "EXPORTS_RETRY_BASE_SECONDS": str(settings.retry_base_seconds),
            "EXPORTS_RETRY_CAP_SECONDS": str(settings.retry_cap_seconds),
            # Several test pollers run at once: none of them serves /metrics.
            "EXPORTS_METRICS_PORT": "0",
        }
    )
    return env


def start_poller_process(settings: Settings, log_file: Path, **env: str) -> subprocess.Popen:
    """`python -m poller` with the test's settings (plus `env` overrides), logging to a file."""
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "poller"],
            cwd=PROJECT_ROOT,
            env={**settings_env(settings), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
