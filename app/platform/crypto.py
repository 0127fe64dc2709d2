"""Encryption at rest for personal data and secrets: email addresses and webhook secrets.

EXPORTS_ENCRYPTION_KEYS holds Fernet keys, comma-separated (cryptography's MultiFernet):
the first encrypts, every one decrypts, so a key is rotated by putting a new one first,
running `exports-admin rotate-keys` (which re-encrypts every row with it) and then
dropping the old one. Addresses are looked up without decrypting through a blind index:
HMAC-SHA256 of the normalised address under a key derived from each Fernet key (never the
Fernet key itself), so a lookup matches rows indexed under any configured key.

One Vault per process, configured at start-up (configure()); the domain modules that
store the data call vault().
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Derives the blind-index key from a Fernet key; changing it breaks every index.
_INDEX_CONTEXT = b"exports.blind-index.v1"


class UnreadableSecret(Exception):
    """A stored value no configured key decrypts (a key was dropped too early)."""


class Vault:
    """Encrypts, decrypts and blind-indexes with the configured keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernets = [Fernet(key.encode()) for key in keys]
        self._multi = MultiFernet(self._fernets)
        self._index_keys = [
            hmac.new(key.encode(), _INDEX_CONTEXT, hashlib.sha256).digest() for key in keys
        ]

    def encrypt(self, text: str) -> str:
        """A Fernet token of `text` under the first key."""
        return self._multi.encrypt(text.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The text of a token made under any configured key."""
        try:
            return self._multi.decrypt(token.encode()).decode()
        except InvalidToken:
            raise UnreadableSecret("no configured encryption key decrypts this value") from None

    def rotate(self, token: str) -> str:
        """The same text re-encrypted under the first key."""
        try:
            return self._multi.rotate(token.encode()).decode()
        except InvalidToken:
            raise UnreadableSecret("no configured encryption key decrypts this value") from None

    def blind_index(self, normalised: str) -> str:
        """The lookup key of a (normalised) value under the first key."""
        return self.blind_indexes(normalised)[0]

    def blind_indexes(self, normalised: str) -> list[str]:
        """Its lookup keys under every configured key: what a lookup matches."""
        return [
            hmac.new(key, normalised.encode(), hashlib.sha256).hexdigest()
            for key in self._index_keys
        ]


def mask_address(address: str) -> str:
    """a***@example.com: enough for a person to recognise, not to write to."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


_vault: Vault | None = None


def configure(keys: Sequence[str]) -> Vault:
    """Set the process's vault (at start-up, from the settings)."""
    global _vault
    _vault = Vault(keys)
    return _vault


def vault() -> Vault:
    """The process's vault; configure() must have run."""
    if _vault is None:
        raise RuntimeError("encryption is not configured: call app.platform.crypto.configure()")
    return _vault
