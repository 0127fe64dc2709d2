"""Log lines: one JSON object each, with the context they were written in, and no secrets."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from app.platform.logs import (
    bind_context,
    configure_logging,
    log_context,
    make_handler,
    redact,
    request_id_from,
    unbind_context,
)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines (as in production) into a buffer."""
    stream = io.StringIO()
    logger = logging.getLogger("tests.logs")
    logger.handlers[:] = [make_handler("json", stream)]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.handlers.clear()


def lines(stream: io.StringIO) -> list[dict]:
    """Every line of the buffer, parsed (fails if any is not one JSON object)."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_record_is_one_json_object_with_the_standard_fields(captured) -> None:
    logger, stream = captured
    logger.info("export %s finished", "x", extra={"rows": 10})
    logger.warning("two\nlines")

    first, second = lines(stream)

    assert first["level"] == "info"
    assert first["logger"] == "tests.logs"
    assert first["message"] == "export x finished"
    assert first["rows"] == 10
    assert first["timestamp"].endswith("+00:00")
    assert second["message"] == "two\nlines"


def test_tracebacks_stay_inside_the_line(captured) -> None:
    logger, stream = captured
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")

    (entry,) = lines(stream)
    assert "ValueError: boom" in entry["exception"]


def test_context_fields_are_on_every_line_inside_the_block_only(captured) -> None:
    logger, stream = captured
    with log_context(job_id="j-1", outbox_id=7, attempt=2, topic="export.run", tenant=None):
        logger.info("inside")
        token = bind_context(tenant="acme")
        logger.info("after the tenant is known")
        unbind_context(token)
    logger.info("outside")

    inside, with_tenant, outside = lines(stream)
    assert {k: inside[k] for k in ("job_id", "outbox_id", "attempt", "topic")} == {
        "job_id": "j-1",
        "outbox_id": 7,
        "attempt": 2,
        "topic": "export.run",
    }
    assert "tenant" not in inside  # None values are not written
    assert with_tenant["tenant"] == "acme"
    assert "job_id" not in outside


def test_context_is_per_thread(captured) -> None:
    logger, stream = captured
    with log_context(job_id="main-thread"):
        thread = threading.Thread(target=lambda: logger.info("other thread"))
        thread.start()
        thread.join()

    (entry,) = lines(stream)
    assert "job_id" not in entry


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("link http://exports.test/d/eyJqb2IiOiIxIn0.ZmF.k3yZ sent", "eyJqb2IiOiIxIn0.ZmF.k3yZ"),
        (
            "302 to https://b.s3.amazonaws.com/k.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAX%2F20240101&X-Amz-Signature=abc123def",
            "X-Amz-Signature=abc123def",
        ),
        ("recipients refused: {'owner@example.com': (550, b'no')}", "owner@example.com"),
        ("postgresql://exports:hunter2@db.internal:5432/exports", "hunter2"),
        ("Authorization: Bearer ek_live_abcdef123456", "ek_live_abcdef123456"),
        ("secret_key='s3cr3t-value'", "s3cr3t-value"),
    ],
)
def test_redact_removes_tokens_presigned_urls_credentials_and_emails(text, secret) -> None:
    assert secret not in redact(text)


def test_redact_keeps_what_operators_need() -> None:
    text = "export finished job 6f1c3c2e rows=10 key=default/6f1c/abc.csv.gz GET /v1/exports"
    assert redact(text) == text


def test_redaction_applies_to_message_arguments_extras_and_tracebacks(captured) -> None:
    logger, stream = captured
    try:
        raise RuntimeError("could not mail owner@example.com")
    except RuntimeError:
        logger.exception(
            "sending to %s failed",
            "owner@example.com",
            extra={"link": "https://x.test/d/tok.en.sig", "to": ["owner@example.com"]},
        )

    raw = stream.getvalue()
    assert "owner@example.com" not in raw
    assert "tok.en.sig" not in raw
    (entry,) = lines(stream)
    assert entry["message"] == "sending to [email] failed"
    assert entry["link"] == "https://x.test/d/[redacted]"


def test_text_format_is_one_readable_line_with_context() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.logs.text")
    logger.handlers[:] = [make_handler("text", stream)]
    logger.propagate = False
    with log_context(job_id="j-9", attempt=1):
        logger.warning("slow export for a@example.com")
    logger.handlers.clear()

    line = stream.getvalue().strip()
    assert "WARNING" in line and "tests.logs.text: slow export for [email]" in line
    assert "[job_id=j-9 attempt=1]" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


def test_auto_format_is_json_when_stdout_is_not_a_terminal() -> None:
    stream = io.StringIO()  # isatty() is False, as under ECS
    logger = logging.getLogger("tests.logs.auto")
    logger.handlers[:] = [make_handler("auto", stream)]
    logger.propagate = False
    logger.info("hello")
    logger.handlers.clear()

    assert json.loads(stream.getvalue())["message"] == "hello"


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("req-123", True),
        ("a" * 200, True),
        ("a" * 201, False),
        ("bad\nheader", False),
        ("", False),
        ("   ", False),
        (None, False),
    ],
)
def test_request_ids_are_taken_only_when_sane(header, kept) -> None:
    request_id = request_id_from(header)
    assert (request_id == header) is kept
    if not kept:
        assert len(request_id) == 32 and int(request_id, 16) >= 0


def test_email_message_ids_are_kept_for_tracing(captured) -> None:
    logger, stream = captured
    logger.info("email sent", extra={"email_message_id": "<17.42@mail.example.com>"})

    (entry,) = lines(stream)
    assert entry["email_message_id"] == "<17.42@mail.example.com>"


def test_alembic_plugin_set_up_is_not_logged_at_info() -> None:
    # Issue 13: every API start logged 14 INFO lines of alembic plugin set-up (via /readyz).
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("INFO", "json")
        plugins = logging.getLogger("alembic.runtime.plugins")
        assert not plugins.isEnabledFor(logging.INFO)
        assert logging.getLogger("alembic.runtime.migration").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
