"""A flaky webhook receiver for the chaos run: it answers 500 to the first attempt of about
a third of the events and 2xx otherwise, and records every request it gets."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class WebhookCall:
    """One POST the receiver got, and what it answered."""

    webhook_id: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    @property
    def event(self) -> dict[str, Any]:
        """The parsed body."""
        return json.loads(self.body)


class FlakyReceiver:
    """Serves on a free loopback port until stop()."""

    def __init__(self) -> None:
        self.calls: list[WebhookCall] = []
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                webhook_id = self.headers.get("webhook-id", "")
                with receiver._lock:
                    first = webhook_id not in receiver._seen
                    receiver._seen.add(webhook_id)
                    flaky = int(hashlib.sha256(webhook_id.encode()).hexdigest(), 16) % 3 == 0
                    status = 500 if first and flaky else 204
                    receiver.calls.append(
                        WebhookCall(
                            webhook_id,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                            time.time(),
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        """Where to register the endpoint."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/exports"

    def start(self) -> FlakyReceiver:
        """Serve on a daemon thread."""
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def received(self) -> list[WebhookCall]:
        """Every call so far."""
        with self._lock:
            return list(self.calls)
