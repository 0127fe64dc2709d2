"""exports-api: the API under gunicorn (threads), configured from the environment."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from app import create_app
from app.platform.logs import configure_logging, protect_handlers
from app.platform.monitoring import init_sentry
from app.platform.settings import Settings


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        settings = Settings.from_env()
        configure_logging(settings.log_level, settings.log_format)
        # gunicorn's own handlers (error log, access log) get redaction and context too.
        protect_handlers("gunicorn.error", "gunicorn.access")
        init_sentry(settings, process="api")
        return create_app(settings)


def _worker_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def main() -> None:
    """Serve on EXPORTS_BIND (default 0.0.0.0:8000) with EXPORTS_API_WORKERS processes."""
    # Several worker processes, one /metrics: each worker writes its counters to files
    # in this folder and the scraped worker adds them up. Set before metrics are imported.
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="exports-metrics-")
    else:  # a folder given to us: counters of an earlier run must not be added in
        for stale in Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
            stale.unlink(missing_ok=True)
    _Gunicorn(
        {
            "bind": os.environ.get("EXPORTS_BIND", "0.0.0.0:8000"),
            "workers": int(os.environ.get("EXPORTS_API_WORKERS", "2")),
            "worker_class": "gthread",
            "threads": int(os.environ.get("EXPORTS_API_THREADS", "4")),
            "graceful_timeout": 20,
            "accesslog": "-" if os.environ.get("EXPORTS_ACCESS_LOG") else None,
            "child_exit": _worker_exit,
            # gunicorn 27's control socket lives under $HOME, which the image's user
            # cannot write; we do not use it.
            "control_socket_disable": True,
        }
    ).run()
