"""Signed, expiring download links; no database, no network."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode

from app.exports.links import LinkExpired, LinkInvalid, LinkSigner

SECRET = "test-secret-key"
PUBLIC_URL = "https://exports.example.com"
# The salt app/exports/links.py signs with. Written out on purpose: changing it invalidates every
# link already emailed, so this test should notice.
SALT = "exports.download-link.v1"
DAY = 24 * 3600


def signer(secret: str = SECRET, max_age: int = DAY) -> LinkSigner:
    return LinkSigner(secret, PUBLIC_URL, max_age)


def token_of(link: str) -> str:
    return link.rsplit("/d/", 1)[1]


class _PastTimestampSigner(TimestampSigner):
    """Stamps tokens `age_seconds` in the past.

    This only moves the clock of the token's maker; LinkSigner checks the token against
    the real clock, so the token simply looks that old. (itsdangerous reads the time in
    the signer, not the serializer, so that is where get_timestamp is overridden.)
    """

    age_seconds = 0

    def get_timestamp(self) -> int:
        return int(time.time()) - self.age_seconds


def old_token(payload: Any, age_seconds: int, secret: str = SECRET) -> str:
    past_signer = type("PastSigner", (_PastTimestampSigner,), {"age_seconds": age_seconds})
    serializer = URLSafeTimedSerializer(secret, salt=SALT, signer=past_signer)
    return serializer.dumps(payload)


def test_link_round_trips_to_the_job_id() -> None:
    job_id = uuid.uuid4()
    links = signer()

    assert links.job_id_from(token_of(links.link_for(job_id))) == job_id


def test_link_is_the_public_url_then_d_then_a_url_safe_token() -> None:
    link = signer().link_for(uuid.uuid4())

    assert link.startswith(PUBLIC_URL + "/d/")
    token = token_of(link)
    assert token
    assert not set(token) & set("/?#%+= ")


def test_public_url_trailing_slash_does_not_double_the_slash() -> None:
    link = LinkSigner(SECRET, PUBLIC_URL + "/", DAY).link_for(uuid.uuid4())

    assert link.startswith(PUBLIC_URL + "/d/")


def test_token_signed_with_another_secret_is_invalid() -> None:
    foreign = signer(secret="someone-elses-secret").link_for(uuid.uuid4())

    with pytest.raises(LinkInvalid):
        signer().job_id_from(token_of(foreign))


def _tampered(token: str, index: int) -> str:
    replacement = "A" if token[index] != "A" else "B"
    return token[:index] + replacement + token[index + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda t: _tampered(t, 5), id="payload-changed"),
        pytest.param(lambda t: _tampered(t, len(t) - 10), id="signature-changed"),
        pytest.param(lambda t: t[:-1], id="last-char-dropped"),
        pytest.param(lambda t: t[: len(t) // 2], id="cut-in-half"),
        pytest.param(lambda t: t.rsplit(".", 1)[0], id="signature-removed"),
        pytest.param(lambda t: t + "x", id="char-appended"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: "not-a-token", id="garbage"),
    ],
)
def test_tampered_or_truncated_token_is_invalid(damage: Any) -> None:
    token = token_of(signer().link_for(uuid.uuid4()))

    with pytest.raises(LinkInvalid):
        signer().job_id_from(damage(token))


def test_token_older_than_its_lifetime_is_expired() -> None:
    token = old_token(str(uuid.uuid4()), age_seconds=2 * DAY)

    with pytest.raises(LinkExpired):
        signer(max_age=DAY).job_id_from(token)


def test_old_token_within_its_lifetime_is_honoured() -> None:
    job_id = uuid.uuid4()
    token = old_token(str(job_id), age_seconds=DAY - 60)

    assert signer(max_age=DAY).job_id_from(token) == job_id


def test_expired_token_from_another_secret_is_invalid_not_expired() -> None:
    token = old_token(str(uuid.uuid4()), age_seconds=2 * DAY, secret="someone-elses-secret")

    with pytest.raises(LinkInvalid):
        signer(max_age=DAY).job_id_from(token)


@pytest.mark.parametrize(
    "payload",
    ["not-a-uuid", "", None, 42, ["7d6f2b9e-59a4-4f2a-9a53-3a7f1f9c1c11"], {"job": "x"}],
    ids=["text", "empty-text", "null", "number", "list", "object"],
)
def test_genuine_token_whose_payload_is_not_a_uuid_is_invalid(payload: Any) -> None:
    token = URLSafeTimedSerializer(SECRET, salt=SALT).dumps(payload)

    with pytest.raises(LinkInvalid):
        signer().job_id_from(token)


def _same_bytes_spellings(token: str) -> list[str]:
    """Other spellings of `token` that decode to the same bytes: the signature's last
    character with other unused low bits, or padding appended (issue 12, item 8)."""
    body, signature = token.rsplit(".", 1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    decoded = base64_decode(signature)
    variants = [
        f"{body}.{signature[:-1]}{c}"
        for c in alphabet
        if c != signature[-1] and base64_decode(signature[:-1] + c) == decoded
    ]
    return variants + [token + "=" * n for n in (1, 2, 3)]


def test_only_the_canonical_spelling_of_a_token_is_honoured() -> None:
    job_id = uuid.uuid4()
    token = token_of(signer().link_for(job_id))
    variants = _same_bytes_spellings(token)
    assert len(variants) == 6  # 3 other last characters + 3 paddings, all the same bytes

    assert signer().job_id_from(token) == job_id
    for variant in variants:
        with pytest.raises(LinkInvalid):
            signer().job_id_from(variant)
