"""Access keys: generation, hashing and parsing, free of I/O.

A key looks like MessageBird's: 25 characters from ``[A-Za-z0-9]`` (log2(62**25) = 148
bits of entropy), prefixed ``test_`` for the sandbox. Only its SHA-256 digest is stored;
the key itself is shown once, when it is created. Lookups go by digest through a unique
index, so the comparison the database makes is between digests an attacker cannot
choose, and a timing difference tells them nothing about any stored key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
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


def hash_key(key: str) -> bytes:
    """The stored digest of ``key``."""
    return hashlib.sha256(key.encode("ascii")).digest()


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
