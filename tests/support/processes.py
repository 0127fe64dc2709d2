"""Running the real `exports-poller` as a separate process, configured like the tests' one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.platform.settings import PROJECT_ROOT, Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """This process's environment with `settings` in it (nothing inherited overrides them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTS_")}
    env.update(settings.to_env())
    # Several test pollers run at once: none of them serves /metrics.
    env["EXPORTS_METRICS_PORT"] = "0"
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
