"""The poller's own small HTTP server: /metrics for Prometheus, /healthz for ECS.

/healthz is 200 while the claim loop comes round, 503 once it has not for
EXPORTS_POLLER_STALL_SECONDS (stuck in a query, a deadlock) or while the poller is
stopping. `exports-poller --check` asks it, for use as a container health check.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from poller.core.dispatch import Poller

log = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 2.0
# Binds on every interface; --check then asks on loopback.
_ANY_ADDRESS = frozenset({"0.0.0.0", "::", ""})  # nosec B104  # compared, never bound


def health(poller: Poller, stall_seconds: float) -> tuple[int, dict[str, Any]]:
    """The status code and body of /healthz for `poller` right now."""
    since_tick = time.monotonic() - poller.last_tick
    body: dict[str, Any] = {
        "worker": poller.name,
        "in_flight": poller.in_flight,
        "seconds_since_claim_loop": round(since_tick, 3),
    }
    if poller.stopping:
        return 503, {"status": "stopping", **body}
    if since_tick > stall_seconds:
        return 503, {"status": "stalled", **body}
    return 200, {"status": "ok", **body}


class HealthServer:
    """Serves /metrics and /healthz on a background thread (port 0: any free port)."""

    def __init__(
        self,
        poller: Poller,
        *,
        port: int,
        stall_seconds: float,
        host: str = "127.0.0.1",  # EXPORTS_METRICS_BIND: 0.0.0.0 in the container
    ) -> None:
        self.poller = poller
        self.stall_seconds = stall_seconds
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-server", daemon=True
        )

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self._server.server_address[1]

    def start(self) -> HealthServer:
        """Start serving; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(with_body=True)

            def do_HEAD(self) -> None:
                # Load balancers and uptime checkers probe with HEAD (was a 501).
                self._answer(with_body=False)

            def _answer(self, *, with_body: bool) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST, with_body)
                elif path == "/healthz":
                    status, body = health(server.poller, server.stall_seconds)
                    self._send(status, json.dumps(body).encode(), "application/json", with_body)
                else:
                    self._send(404, b'{"status": "not found"}', "application/json", with_body)

            def _send(self, status: int, body: bytes, content_type: str, with_body: bool) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if with_body:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes and health checks every few seconds are not worth a log line

        return Handler


def check(port: int, *, host: str = "127.0.0.1", timeout: float = CHECK_TIMEOUT_SECONDS) -> str:
    """Ask a poller's /healthz; '' when it answered 200 in time, else what went wrong.

    `host` is where the poller binds; an any-address bind is asked on loopback."""
    host = "127.0.0.1" if host in _ANY_ADDRESS else host
    try:
        # A fixed http:// URL to our own process, never user input.
        url = f"http://{host}:{port}/healthz"
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # nosec B310
            if answer.status == 200:
                return ""
            return f"/healthz answered {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"/healthz answered {exc.code}: {exc.read().decode(errors='replace')}"
    except OSError as exc:  # refused, timed out, unreachable
        return f"/healthz did not answer: {exc}"
