"""Logs on stdout: one JSON object per line (CloudWatch and friends), or text for people.

Every line carries the context it was written in — the API request's `request_id`, the
poller message's `job_id`, `outbox_id`, `attempt`, `topic`, `tenant` — from context
variables set around each request and each message (`log_context`). A redacting filter
on the handler keeps download-link tokens, presigned URLs, credentials in URLs and email
addresses out of every line, whoever logged it.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any, TextIO

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# Context fields in the order they are printed.
CONTEXT_FIELDS = ("request_id", "job_id", "outbox_id", "attempt", "topic", "tenant")

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "exports_log_context", default=_EMPTY
)

# --- context -----------------------------------------------------------------------------


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` (None values skipped) to every log line written inside the block."""
    token = bind_context(**fields)
    try:
        yield
    finally:
        _context.reset(token)


def bind_context(**fields: Any) -> contextvars.Token:
    """Add `fields` to the current context until `unbind_context(token)`."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    return _context.set(merged)


def unbind_context(token: contextvars.Token) -> None:
    """Undo one `bind_context`."""
    _context.reset(token)


def current_context() -> dict[str, Any]:
    """The context fields in force here (for Sentry tags, for instance)."""
    return dict(_context.get())


def request_id_from(header: str | None) -> str:
    """The caller's X-Request-Id if it is sane (printable, 1 to 200 chars), else a new one."""
    if header and len(header) <= 200 and header.isprintable() and header.strip():
        return header
    return uuid.uuid4().hex


# --- redaction -----------------------------------------------------------------------------

_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    # A presigned URL's query string is a credential for as long as it lives.
    (
        re.compile(
            r"\?(?=[^\s\"'<>]*(?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|"
            r"Signature=|AWSAccessKeyId=))[^\s\"'<>]*",
            re.IGNORECASE,
        ),
        "?[redacted]",
    ),
    # The emailed download link: /d/<signed token>.
    (re.compile(r"(/d/)[^\s/?#\"'<>]+"), r"\1[redacted]"),
    # user:password@ in URLs (database URLs, SMTP URLs).
    (
        re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@\"']+:)[^\s@/\"']+@", re.IGNORECASE),
        r"\1[redacted]@",
    ),
    # Authorization: Bearer/Basic <credentials>.
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1 [redacted]"),
    # key=value / "key": "value" for names that are secrets by definition.
    (
        re.compile(
            r"((?:token|secret|password|passwd|api[_-]?key|secret[_-]?key|authorization)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+",
            re.IGNORECASE,
        ),
        r"\1[redacted]",
    ),
    # Email addresses (the export owner's notify address, recipients in SMTP errors).
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "[email]"),
]


# Extra fields that are identifiers, not secrets, though they look like addresses: an
# email's Message-ID is <random@host>, and ops need it to trace a message.
NOT_REDACTED = frozenset({"email_message_id"})


def redact(text: str) -> str:
    """`text` with tokens, presigned query strings, URL credentials and emails blanked."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """`redact` applied to strings inside `value` (dicts, lists, tuples); others unchanged."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Rewrites a record's message, extra fields and traceback with `redact` (never drops)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact in place; always keep the record."""
        if getattr(record, "_exports_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep what we have
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and not key.startswith("_") and key not in NOT_REDACTED:
                setattr(record, key, redact_value(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._exports_redacted = True
        return True


# Callables that return more context fields for the current line, for values known only
# later (the API's tenant is known once the API key is checked): see add_context_source.
_sources: list[Callable[[], Mapping[str, Any]]] = []


def add_context_source(source: Callable[[], Mapping[str, Any]]) -> None:
    """Also take context fields from `source()` (must be cheap and never raise)."""
    if source not in _sources:
        _sources.append(source)


class ContextFilter(logging.Filter):
    """Copies the context fields (request_id, job_id, ...) onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add context fields the record does not already carry."""
        fields = dict(_context.get())
        for source in _sources:
            with contextlib.suppress(Exception):  # a context source must never lose a line
                fields.update({k: v for k, v in source().items() if v is not None})
        for key, value in fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


# --- formatting -----------------------------------------------------------------------------


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """timestamp, level, logger, message, context and `extra=` fields, traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        entry: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message  key=value ...` for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a readable line (plus its traceback)."""
        when = dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        extras = _extras(record)
        ordered = [k for k in CONTEXT_FIELDS if k in extras] + sorted(
            k for k in extras if k not in CONTEXT_FIELDS
        )
        fields = " ".join(f"{k}={extras[k]}" for k in ordered)
        line = f"{when} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if fields:
            line = f"{line}  [{fields}]"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        return line


def make_handler(fmt: str = "auto", stream: TextIO | None = None) -> logging.Handler:
    """A stream handler with context, redaction and the chosen format (auto: text on a TTY)."""
    stream = stream or sys.stdout
    if fmt == "auto":
        fmt = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    return handler


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    """Send every log record to stdout: JSON lines, or text on a terminal (EXPORTS_LOG_FORMAT)."""
    root = logging.getLogger()
    root.handlers[:] = [make_handler(fmt)]
    root.setLevel(level)
    logging.getLogger("werkzeug").setLevel("WARNING")
    # Alembic announces each of its plugins at INFO whenever a process reads the migration
    # head (/readyz): a dozen lines per start that say nothing to ops.
    logging.getLogger("alembic.runtime.plugins").setLevel("WARNING")


def protect_handlers(*logger_names: str) -> None:
    """Add redaction (and context) to handlers other libraries attached (gunicorn's)."""
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(ContextFilter())
                handler.addFilter(RedactingFilter())
