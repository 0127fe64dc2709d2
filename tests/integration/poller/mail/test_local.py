"""FileMailer writes real .eml files that read back as the message sent."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from poller.mail import mailer_from_url
from poller.mail.local import FileMailer


def message(subject: str = "Your export is ready") -> EmailMessage:
    """A small two-part message without a Message-ID."""
    msg = EmailMessage()
    msg["From"] = "noreply@example.com"
    msg["To"] = "ada@example.org"
    msg["Subject"] = subject
    msg.set_content("plain body https://exports.example.com/d/tok")
    msg.add_alternative("<p>html body</p>", subtype="html")
    return msg


def test_writes_an_eml_file_in_a_new_folder(tmp_path: Path) -> None:
    folder = tmp_path / "not" / "there" / "yet"
    mailer = mailer_from_url(f"file://{folder}")

    message_id = mailer.send(message())

    (written,) = folder.iterdir()
    assert written.suffix == ".eml"
    parsed = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == message_id
    assert message_id.endswith("@example.com>")
    assert parsed["To"] == "ada@example.org"
    assert isinstance(parsed, EmailMessage)
    plain = parsed.get_body(("plain",))
    assert plain is not None and "https://exports.example.com/d/tok" in plain.get_content()


def test_file_names_are_unique_and_sort_in_sending_order(tmp_path: Path) -> None:
    mailer = FileMailer(tmp_path)
    subjects = [f"message {n:02d}" for n in range(20)]

    ids = [mailer.send(message(subject)) for subject in subjects]

    files = sorted(tmp_path.iterdir())
    assert len(files) == 20 and len(set(ids)) == 20
    assert [email.message_from_bytes(f.read_bytes())["Subject"] for f in files] == subjects


def test_keeps_an_existing_message_id(tmp_path: Path) -> None:
    msg = message()
    msg["Message-ID"] = "<fixed@example.com>"

    assert FileMailer(tmp_path).send(msg) == "<fixed@example.com>"


@pytest.mark.parametrize("url", ["file://relative/dir", "file://", "s3://bucket/x"])
def test_rejects_urls_that_are_not_absolute_folders(url: str) -> None:
    with pytest.raises(ValueError, match="file:///absolute/dir"):
        FileMailer.from_url(url)


def test_mailer_from_url_refuses_unknown_schemes() -> None:
    with pytest.raises(ValueError, match="unsupported mail URL"):
        mailer_from_url("sendmail:///usr/sbin/sendmail")
