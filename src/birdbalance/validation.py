"""Turning untrusted request data into typed values, with MessageBird-shaped errors.

Used by the admin HTTP API and the CLI alike, so both accept exactly the same input.
Request bodies are read by their models (:mod:`birdbalance.request_shapes`); what is here
is shared by them and by paths, query strings and headers.
"""

from __future__ import annotations

import re
from typing import Final

from birdbalance.errors import InvalidParameter, MissingParameter, NotFound

MAX_REFERENCE_CHARS: Final = 255
MAX_NAME_CHARS: Final = 255
MAX_METADATA_KEYS: Final = 50
MAX_METADATA_KEY_CHARS: Final = 40
MAX_METADATA_VALUE_CHARS: Final = 500
MAX_IDEMPOTENCY_KEY_CHARS: Final = 255
_IDEMPOTENCY_RE: Final = re.compile(rf"[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}")
_ID_RE: Final = re.compile(r"[a-z]{3}_[0-9A-Z]{26}")


def idempotency_key(value: str | None, *, required: bool) -> str | None:
    """Validate an ``Idempotency-Key``: 1 to 255 printable ASCII characters."""
    if value is None:
        if required:
            raise MissingParameter("the Idempotency-Key header is required", "Idempotency-Key")
        return None
    if _IDEMPOTENCY_RE.fullmatch(value) is None:
        raise InvalidParameter(
            f"Idempotency-Key must have 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII "
            "characters",
            "Idempotency-Key",
        )
    return value


def resource_id(value: str, parameter: str) -> str:
    """An id from a path or a field; malformed ids are simply not found."""
    if _ID_RE.fullmatch(value) is None:
        raise NotFound(f"no {parameter} {value[:40]!r}", parameter)
    return value


def filter_text(value: str | None, name: str, max_chars: int) -> str | None:
    """A text filter from a query string: bounded, and free of NUL, which PostgreSQL's
    text cannot hold (it would fail the query, not match nothing)."""
    if value is not None and (len(value) > max_chars or "\x00" in value):
        raise InvalidParameter(f"{name} must be at most {max_chars} characters, no NUL", name)
    return value


def is_digits(text: str) -> bool:
    """Only the ASCII digits 0-9 (``str.isdigit`` also takes ``²`` and ``٣``, which ``int``
    refuses or reads as other numbers)."""
    return text.isascii() and text.isdigit()


def page_limit(value: str | None, *, default: int, maximum: int, parameter: str = "limit") -> int:
    """A count from query text (``limit``, ``days``...): digits, 1 to ``maximum``."""
    if value is None:
        return default
    if not (is_digits(value) and len(value) <= 9) or not 1 <= int(value) <= maximum:
        raise InvalidParameter(f"{parameter} must be 1 to {maximum}", parameter)
    return int(value)
