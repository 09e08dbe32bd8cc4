"""Access keys: generation, hashing and parsing, free of I/O.

A key looks like MessageBird's: 25 characters from ``[A-Za-z0-9]`` (log2(62**25) = 148
bits of entropy), prefixed ``test_`` for the sandbox. The key itself is shown once, when
it is created; what is stored is ``HMAC-SHA256(secret, SHA-256(key))`` under a
server-side secret kept outside the database (see :mod:`birdbalance.key_secret`), so a
copy of the database alone cannot even confirm a guessed key. Lookups go by digest
through a unique index, so the comparison the database makes is between digests an
attacker cannot choose, and a timing difference tells them nothing about any stored key.

The inner SHA-256 lets a database whose keys were stored as plain SHA-256 digests (schema
v6 and before) move under the secret without the keys: :meth:`KeyHasher.adopt`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from typing import Final

from birdbalance.ledger import Mode

KEY_LENGTH: Final = 25
TEST_PREFIX: Final = "test_"
_ALPHABET: Final = string.ascii_letters + string.digits
_KEY_RE: Final = re.compile(rf"(?:test_)?[A-Za-z0-9]{{{KEY_LENGTH}}}")
#: Longest ``Authorization`` or ``access_key`` value worth looking at.
MAX_CREDENTIAL_CHARS: Final = 128


def generate_key(mode: Mode) -> str:
    """A new random access key for ``mode``."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(KEY_LENGTH))
    return TEST_PREFIX + body if mode is Mode.TEST else body


def mode_of(key: str) -> Mode:
    return Mode.TEST if key.startswith(TEST_PREFIX) else Mode.LIVE


def is_well_formed(key: str) -> bool:
    """Whether ``key`` has the shape of a birdbalance key (cheap check before a lookup)."""
    return _KEY_RE.fullmatch(key) is not None


#: Shortest server-side secret accepted (bytes; a random one has 256 bits).
MIN_SECRET_BYTES: Final = 32
#: Admin tokens: ``bbt_`` and 32 characters of ``[A-Za-z0-9]`` (190 bits).
TOKEN_PREFIX: Final = "bbt_"  # noqa: S105 -- a prefix, not a secret
TOKEN_LENGTH: Final = 32
_TOKEN_RE: Final = re.compile(rf"{TOKEN_PREFIX}[A-Za-z0-9]{{{TOKEN_LENGTH}}}")
_CHECK_MESSAGE: Final = b"birdbalance key secret check v1"


def hash_key(key: str, secret: bytes) -> bytes:
    """The stored digest of ``key`` (or of an admin token) under ``secret``."""
    inner = hashlib.sha256(key.encode("utf-8")).digest()
    return hmac.new(secret, inner, hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class KeyHasher:
    """Digests of keys and tokens under one server-side secret."""

    secret: bytes

    def __post_init__(self) -> None:
        assert len(self.secret) >= MIN_SECRET_BYTES, "the key secret is too short"

    def __repr__(self) -> str:
        return "KeyHasher(secret=***)"

    def digest(self, key: str) -> bytes:
        """What is stored, and looked up, for ``key``."""
        return hash_key(key, self.secret)

    def adopt(self, sha256_digest: bytes) -> bytes:
        """The digest under the secret of a key stored as its plain SHA-256 digest."""
        assert len(sha256_digest) == 32
        return hmac.new(self.secret, sha256_digest, hashlib.sha256).digest()

    def check_value(self) -> str:
        """Stored beside the keys, to notice a node started with another secret.

        It is an HMAC of a constant, so it tells nothing about the secret itself.
        """
        return hmac.new(self.secret, _CHECK_MESSAGE, hashlib.sha256).hexdigest()


def generate_token() -> str:
    """A new random admin token."""
    return TOKEN_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN_LENGTH))


def is_token(value: str) -> bool:
    """Whether ``value`` has the shape of a stored admin token."""
    return _TOKEN_RE.fullmatch(value) is not None


def hint_of(key: str) -> str:
    """What may be shown of a key later: its prefix and last four characters."""
    prefix = TEST_PREFIX if key.startswith(TEST_PREFIX) else ""
    return f"{prefix}…{key[-4:]}"


def key_from_authorization(value: bytes) -> str | None:
    """The key in an ``Authorization: AccessKey <key>`` header value, or None."""
    if len(value) > MAX_CREDENTIAL_CHARS + 10:
        return None
    scheme, _, rest = value.partition(b" ")
    if scheme.lower() != b"accesskey":
        return None
    try:
        key = rest.strip().decode("ascii")
    except UnicodeDecodeError:
        return None
    return key if is_well_formed(key) else None
