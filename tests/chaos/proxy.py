"""A fault-injecting HTTP/1.1 proxy in front of the local S3/SES endpoint (moto's server).

Every request is read completely (HTTP/1.1 framing: Content-Length or chunked bodies, which
covers boto3's `aws-chunked` uploads; `Expect: 100-continue` is answered by the proxy),
then, by a random draw per REQUEST (not per connection), one of:

- `error`: answered at once with a 503 (S3: a `SlowDown` XML error; SES: a JSON error);
- `reset`: the connection is closed with SO_LINGER 0, so the client sees a TCP reset;
- `slow`: held for a random delay, then forwarded;
- `lost_response` (off unless asked for): forwarded, and the connection reset instead of
  relaying the answer — the request took effect but the client cannot know it;
- nothing: forwarded, and the answer relayed.

Every request is recorded as an `Exchange` (operation, object key, fault, upstream status,
and for SES SendEmail the bodies), so a test can count injected faults and find out which
uploads and emails really reached the endpoint. When the client's process is known (a
`peer_pids` callable naming candidate processes), each exchange also names the pid that
sent it, found through /proc (Linux) when the connection is accepted.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

ERROR = "error"
RESET = "reset"
SLOW = "slow"
LOST_RESPONSE = "lost_response"
FAULT_KINDS = (ERROR, RESET, SLOW, LOST_RESPONSE)

_MAX_LINE = 64 * 1024
_MAX_HEADERS = 200
# Bodies kept in the exchange log: emails (to read them back), and the small XML answer of
# CreateMultipartUpload (its UploadId); object data is never kept.
_KEEP_BODY_OPERATIONS = frozenset({"SendEmail", "CreateMultipartUpload"})


class ProtocolError(Exception):
    """The peer sent something that is not HTTP/1.1 as we understand it."""


@dataclass(frozen=True)
class FaultPlan:
    """Shares (0..1) of requests that get each fault; the rest pass through untouched."""

    error: float = 0.0
    reset: float = 0.0
    slow: float = 0.0
    lost_response: float = 0.0
    slow_seconds: tuple[float, float] = (0.5, 2.5)

    def __post_init__(self) -> None:
        if self.error + self.reset + self.slow + self.lost_response > 1.0:
            raise ValueError("fault shares add up to more than 1")

    def draw(self, rng: random.Random) -> str | None:
        """The fault for one request, or None."""
        x = rng.random()
        for kind, share in (
            (ERROR, self.error),
            (RESET, self.reset),
            (SLOW, self.slow),
            (LOST_RESPONSE, self.lost_response),
        ):
            if x < share:
                return kind
            x -= share
        return None


@dataclass
class HttpMessage:
    """A request or response as read off the wire; `body` keeps its framing (chunks)."""

    start_line: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The last value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        found = None
        for key, value in self.headers:
            if key.lower() == wanted:
                found = value
        return found

    def without(self, *names: str) -> HttpMessage:
        """A copy without the named headers."""
        drop = {n.lower() for n in names}
        return HttpMessage(
            self.start_line, [(k, v) for k, v in self.headers if k.lower() not in drop], self.body
        )

    def to_bytes(self) -> bytes:
        """The message as it goes on the wire."""
        head = self.start_line + "\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in self.headers) + "\r\n"
        return head.encode("latin-1") + self.body

    @property
    def chunked(self) -> bool:
        """True when the body is sent with Transfer-Encoding: chunked."""
        return "chunked" in (self.header("Transfer-Encoding") or "").lower()

    def decoded_body(self) -> bytes:
        """The body without chunked framing (aws-chunked content stays as it is)."""
        return _dechunk(self.body) if self.chunked else self.body


@dataclass(frozen=True)
class Exchange:
    """One request that reached the proxy, and what became of it."""

    started: float  # time.time() when the request was read
    ended: float  # when the client got its answer (or the reset)
    peer_pid: int | None  # the process that sent it, when known
    method: str
    target: str
    service: str  # "s3", "ses" or "" when unknown
    operation: str  # e.g. PutObject, CompleteMultipartUpload, SendEmail
    key: str | None  # S3 object key (without the bucket)
    fault: str | None  # the injected fault, if any
    status: int | None  # the upstream's status when forwarded, else None
    delivered: bool  # True when the upstream's answer reached the client
    upstream_error: str | None = None
    request_body: bytes | None = field(default=None, repr=False)
    response_body: bytes | None = field(default=None, repr=False)

    @property
    def reached_upstream(self) -> bool:
        """The request took effect upstream (forwarded and answered 2xx)."""
        return self.status is not None and 200 <= self.status < 300


class FaultProxy:
    """Listens on 127.0.0.1:<free port>; forwards to `upstream` (http://host:port)."""

    def __init__(
        self,
        upstream: str,
        plan: FaultPlan,
        *,
        seed: int | None = None,
        peer_pids: Callable[[], Iterable[int]] | None = None,
        upstream_timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self.plan = plan
        self.peer_pids = peer_pids
        self.upstream_timeout = upstream_timeout
        self.faults_enabled = threading.Event()
        self.faults_enabled.set()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._exchanges: list[Exchange] = []
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="proxy", daemon=True)
        self._connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        """Where clients should send their requests."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        """Start accepting connections (in a background thread)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close every open connection."""
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        with self._log_lock:
            connections = list(self._connections)
        for conn in connections:
            _close_quietly(conn)

    def exchanges(self) -> list[Exchange]:
        """Every request seen so far, in the order they ended."""
        with self._log_lock:
            return list(self._exchanges)

    def fault_counts(self) -> collections.Counter[tuple[str, str]]:
        """Injected faults by (service, kind)."""
        return collections.Counter(
            (e.service or "?", e.fault) for e in self.exchanges() if e.fault is not None
        )

    # --- serving ----------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            pid = self._owner_of(address[1])
            with self._log_lock:
                self._connections.add(conn)
            threading.Thread(
                target=self._serve, args=(conn, pid), name=f"proxy-{address[1]}", daemon=True
            ).start()

    def _owner_of(self, client_port: int) -> int | None:
        if self.peer_pids is None:
            return None
        try:
            return socket_owner(client_port, self.port, self.peer_pids())
        except Exception:
            return None

    def _serve(self, conn: socket.socket, pid: int | None) -> None:
        conn.settimeout(300)
        reader = conn.makefile("rb")
        reset = False
        try:
            while not self._stopping.is_set():
                try:
                    request = read_request(reader, lambda: conn.sendall(_CONTINUE))
                except (ProtocolError, OSError):
                    return
                if request is None:
                    return  # the client closed its (idle) connection
                try:
                    reset, close = self._handle(conn, request, pid)
                except OSError:
                    return  # the client went away while we answered (the exchange is logged)
                if reset or close:
                    return
        finally:
            reader.close()
            if reset:
                _reset(conn)
            else:
                _close_quietly(conn)
            with self._log_lock:
                self._connections.discard(conn)

    def _handle(
        self, conn: socket.socket, request: HttpMessage, pid: int | None
    ) -> tuple[bool, bool]:
        """Answer one request; (reset the connection, close it)."""
        started = time.time()
        method, target = _method_and_target(request)
        service, operation, key = classify(request)
        fault = None
        if self.faults_enabled.is_set():
            with self._rng_lock:
                fault = self.plan.draw(self._rng)
                delay = self._rng.uniform(*self.plan.slow_seconds)
        record = _Record(started, pid, method, target, service, operation, key, fault)
        if operation in _KEEP_BODY_OPERATIONS:
            record.request_body = request.decoded_body()
        if fault == RESET:
            self._log(record)
            return True, True
        if fault == ERROR:
            try:
                conn.sendall(error_response(service).to_bytes())
            finally:
                self._log(record)
            return False, _wants_close(request)
        if fault == SLOW:
            time.sleep(delay)
        try:
            response = self._forward(request, method)
        except (OSError, ProtocolError) as exc:
            record.upstream_error = f"{type(exc).__name__}: {exc}"
            try:
                conn.sendall(_bad_gateway(str(exc)).to_bytes())
            finally:
                self._log(record)
            return False, True
        record.status = _status(response)
        if operation in _KEEP_BODY_OPERATIONS:
            record.response_body = response.decoded_body()
        if fault == LOST_RESPONSE:
            self._log(record)
            return True, True
        try:
            conn.sendall(response.to_bytes())
            record.delivered = True
        finally:
            self._log(record)
        close = (
            _wants_close(request) or _wants_close(response) or isinstance(response.body, _UntilEof)
        )
        return False, close

    def _forward(self, request: HttpMessage, method: str) -> HttpMessage:
        """Send `request` on a new upstream connection; its complete response."""
        with socket.create_connection(self.upstream, timeout=self.upstream_timeout) as upstream:
            upstream.sendall(request.without("Expect").to_bytes())
            with upstream.makefile("rb") as reader:
                return read_response(reader, method)

    def _log(self, record: _Record) -> None:
        exchange = Exchange(
            started=record.started,
            ended=time.time(),
            peer_pid=record.pid,
            method=record.method,
            target=record.target,
            service=record.service,
            operation=record.operation,
            key=record.key,
            fault=record.fault,
            status=record.status,
            delivered=record.delivered,
            upstream_error=record.upstream_error,
            request_body=record.request_body,
            response_body=record.response_body,
        )
        with self._log_lock:
            self._exchanges.append(exchange)


@dataclass
class _Record:
    started: float
    pid: int | None
    method: str
    target: str
    service: str
    operation: str
    key: str | None
    fault: str | None
    status: int | None = None
    delivered: bool = False
    upstream_error: str | None = None
    request_body: bytes | None = None
    response_body: bytes | None = None


# --- HTTP/1.1 framing -------------------------------------------------------------------------

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _UntilEof(bytes):
    """Marks a response body that was delimited by the upstream closing its connection."""


def read_request(reader: BinaryIO, send_continue: Callable[[], None]) -> HttpMessage | None:
    """The next request on the connection, body included; None when the client closed it.

    A request with `Expect: 100-continue` gets the interim answer before its body is read.
    """
    head = _read_head(reader)
    if head is None:
        return None
    request = head
    if (request.header("Expect") or "").lower() == "100-continue":
        send_continue()
    request.body = _read_body(reader, request, until_eof=False)
    return request


def read_response(reader: BinaryIO, method: str) -> HttpMessage:
    """The final response to a `method` request (interim 1xx answers are skipped)."""
    while True:
        response = _read_head(reader)
        if response is None:
            raise ProtocolError("upstream closed the connection without answering")
        status = _status(response)
        if 100 <= status < 200:
            continue
        if method == "HEAD" or status in (204, 304):
            return response
        response.body = _read_body(reader, response, until_eof=True)
        return response


def _read_head(reader: BinaryIO) -> HttpMessage | None:
    line = reader.readline(_MAX_LINE)
    while line in (b"\r\n", b"\n"):  # tolerate stray empty lines between messages
        line = reader.readline(_MAX_LINE)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise ProtocolError("start line too long or cut off")
    headers: list[tuple[str, str]] = []
    while True:
        raw = reader.readline(_MAX_LINE)
        if not raw.endswith(b"\n"):
            raise ProtocolError("header line too long or cut off")
        if raw in (b"\r\n", b"\n"):
            break
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            raise ProtocolError(f"malformed header line {raw[:80]!r}")
        headers.append((name.strip(), value.strip()))
        if len(headers) > _MAX_HEADERS:
            raise ProtocolError("too many headers")
    return HttpMessage(line.decode("latin-1").rstrip("\r\n"), headers)


def _read_body(reader: BinaryIO, message: HttpMessage, *, until_eof: bool) -> bytes:
    if message.chunked:
        return _read_chunked(reader)
    length = message.header("Content-Length")
    if length is not None:
        return _read_exactly(reader, int(length))
    if until_eof:
        return _UntilEof(reader.read())
    return b""


def _read_chunked(reader: BinaryIO) -> bytes:
    """A chunked body with its framing (and trailers) kept, to be relayed as it came."""
    parts: list[bytes] = []
    while True:
        size_line = reader.readline(_MAX_LINE)
        if not size_line.endswith(b"\n"):
            raise ProtocolError("chunk size line cut off")
        parts.append(size_line)
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                trailer = reader.readline(_MAX_LINE)
                if not trailer.endswith(b"\n"):
                    raise ProtocolError("chunked trailer cut off")
                parts.append(trailer)
                if trailer in (b"\r\n", b"\n"):
                    return b"".join(parts)
        parts.append(_read_exactly(reader, size))
        crlf = reader.readline(_MAX_LINE)
        if crlf not in (b"\r\n", b"\n"):
            raise ProtocolError("chunk not followed by CRLF")
        parts.append(crlf)


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    position = 0
    while True:
        end = body.index(b"\n", position)
        size = int(body[position:end].split(b";", 1)[0].strip() or b"0", 16)
        position = end + 1
        if size == 0:
            return bytes(out)
        out += body[position : position + size]
        position += size
        position = body.index(b"\n", position) + 1


def _read_exactly(reader: BinaryIO, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ProtocolError(f"body cut off after {len(data)} of {size} bytes")
    return data


def _status(response: HttpMessage) -> int:
    parts = response.start_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ProtocolError(f"not a status line: {response.start_line[:80]!r}")
    return int(parts[1])


def _method_and_target(request: HttpMessage) -> tuple[str, str]:
    parts = request.start_line.split()
    if len(parts) != 3:
        raise ProtocolError(f"not a request line: {request.start_line[:80]!r}")
    return parts[0], parts[1]


def _wants_close(message: HttpMessage) -> bool:
    return "close" in (message.header("Connection") or "").lower() or message.start_line.endswith(
        "HTTP/1.0"
    )


def error_response(service: str) -> HttpMessage:
    """The injected 503: S3's SlowDown as XML, otherwise a JSON service error."""
    request_id = uuid.uuid4().hex
    if service == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            "<Message>Please reduce your request rate.</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        content_type = "application/xml"
        extra = [("x-amz-request-id", request_id)]
    else:
        body = b'{"message": "Service Unavailable (injected by the chaos proxy)"}'
        content_type = "application/json"
        extra = [("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", "ServiceUnavailable")]
    return HttpMessage(
        "HTTP/1.1 503 Service Unavailable",
        [("Content-Type", content_type), ("Content-Length", str(len(body))), *extra],
        body,
    )


def _bad_gateway(detail: str) -> HttpMessage:
    body = f"chaos proxy: upstream failed: {detail}".encode()
    return HttpMessage(
        "HTTP/1.1 502 Bad Gateway",
        [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ],
        body,
    )


# --- what a request is ------------------------------------------------------------------------


def classify(request: HttpMessage) -> tuple[str, str, str | None]:
    """(service, operation, S3 object key) of an AWS request to a path-style endpoint."""
    method, target = _method_and_target(request)
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    service = _signing_service(request.header("Authorization") or "")
    if not service:
        service = "ses" if parts.path.startswith("/v2/email") else "s3"
    if service == "ses":
        if method == "POST" and parts.path.rstrip("/") == "/v2/email/outbound-emails":
            return service, "SendEmail", None
        return service, f"{method} {parts.path}", None
    if service != "s3":
        return service, f"{method} {parts.path}", None
    _, _, rest = parts.path.lstrip("/").partition("/")
    key = unquote(rest) or None
    if key is None:
        if "uploads" in query:
            return service, "ListMultipartUploads", None
        if method == "POST" and "delete" in query:
            return service, "DeleteObjects", None
        return (
            service,
            {"GET": "ListObjects", "PUT": "CreateBucket", "HEAD": "HeadBucket"}.get(
                method, f"{method} bucket"
            ),
            None,
        )
    if "uploads" in query and method == "POST":
        return service, "CreateMultipartUpload", key
    if "uploadId" in query:
        operation = {
            "PUT": "UploadPart",
            "POST": "CompleteMultipartUpload",
            "DELETE": "AbortMultipartUpload",
            "GET": "ListParts",
        }.get(method, f"{method} upload")
        return service, operation, key
    if method == "PUT":
        copy = request.header("x-amz-copy-source")
        return service, "CopyObject" if copy else "PutObject", key
    operation = {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(
        method, f"{method} object"
    )
    return service, operation, key


def _signing_service(authorization: str) -> str:
    """The service named in a SigV4 credential scope (Credential=AKID/date/region/svc/...)."""
    marker = "Credential="
    start = authorization.find(marker)
    if start < 0:
        return ""
    scope = authorization[start + len(marker) :].split(",", 1)[0].split("/")
    return scope[3] if len(scope) >= 5 else ""


# --- sockets and processes --------------------------------------------------------------------


def socket_owner(client_port: int, server_port: int, pids: Iterable[int]) -> int | None:
    """Which of `pids` holds the local TCP socket 127.0.0.1:client_port → server_port."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (
                int(local.rsplit(":", 1)[1], 16) == client_port
                and int(remote.rsplit(":", 1)[1], 16) == server_port
            ):
                inode = fields[9]
                break
        if inode:
            break
    if not inode or inode == "0":
        return None
    wanted = f"socket:[{inode}]"
    for pid in pids:
        folder = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(folder)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{folder}/{fd}") == wanted:
                    return pid
            except OSError:
                continue
    return None


def _reset(conn: socket.socket) -> None:
    """Close so that the peer gets a TCP RST rather than an orderly FIN."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close_quietly(conn)


def _close_quietly(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.close()
