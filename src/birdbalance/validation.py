"""Turning untrusted request data into typed values, with MessageBird-shaped errors.

Used by the admin HTTP API and the CLI alike, so both accept exactly the same input.
JSON numbers are kept as their original text (:class:`JSONNumber`) so that ``9.2`` is
parsed by the same strict decimal grammar as ``"9.2"`` and never passes through a float.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from birdbalance.errors import BadRequest, InvalidParameter, MissingParameter, NotFound
from birdbalance.ledger import Mode
from birdbalance.money import AmountError, parse_amount

MAX_REFERENCE_CHARS: Final = 255
MAX_NAME_CHARS: Final = 255
MAX_METADATA_KEYS: Final = 50
MAX_METADATA_KEY_CHARS: Final = 40
MAX_METADATA_VALUE_CHARS: Final = 500
MAX_IDEMPOTENCY_KEY_CHARS: Final = 255
MAX_JSON_DEPTH: Final = 8
_IDEMPOTENCY_RE: Final = re.compile(rf"[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_CHARS}}}")
_ID_RE: Final = re.compile(r"[a-z]{3}_[0-9A-Z]{26}")


class JSONNumber(str):
    """A JSON number, kept as the text it was written with."""

    __slots__ = ()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object (an empty body is ``{}``)."""
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
        value = json.loads(
            text,
            parse_float=JSONNumber,
            parse_int=JSONNumber,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadRequest("the request body is not valid UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object")
    _check_tree(value, 1)
    return value


def _check_tree(value: Any, level: int) -> None:
    """Refuse nesting past :data:`MAX_JSON_DEPTH`, and text (values and names alike) that
    is not Unicode: JSON's ``\\ud800`` escapes can spell lone surrogates, which no
    database, log or response can encode."""
    if isinstance(value, str):
        _check_text(value)
        return
    if not isinstance(value, dict | list):
        return
    if level > MAX_JSON_DEPTH:
        raise BadRequest(f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        for name, item in value.items():
            _check_text(name)
            _check_tree(item, level + 1)
    else:
        for item in value:
            _check_tree(item, level + 1)


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(
                "the request body holds text that is not Unicode (a lone surrogate escape)"
            ) from None


class Fields:
    """A JSON object's fields, each taken once; :meth:`done` refuses the leftovers."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self._body = dict(body)

    def take(self, name: str) -> Any:
        return self._body.pop(name, None)

    def text(self, name: str, *, required: bool = False, max_chars: int = 255) -> str | None:
        value = self.take(name)
        if value is None:
            if required:
                raise MissingParameter(f"{name} is required", name)
            return None
        if not isinstance(value, str) or isinstance(value, JSONNumber):
            raise InvalidParameter(f"{name} must be a string", name)
        if not value or len(value) > max_chars:
            raise InvalidParameter(f"{name} must have 1 to {max_chars} characters", name)
        if "\x00" in value:
            raise InvalidParameter(f"{name} must not contain NUL characters", name)
        return value

    def amount(
        self, name: str, *, required: bool = True, allow_negative: bool = False
    ) -> int | None:
        value = self.take(name)
        if value is None:
            if required:
                raise MissingParameter(f"{name} is required", name)
            return None
        if not isinstance(value, str):
            raise InvalidParameter(f'{name} must be a decimal string such as "9.2"', name)
        try:
            return parse_amount(value, allow_negative=allow_negative)
        except AmountError as exc:
            raise InvalidParameter(f"{name} {exc}", name) from None

    def mode(self) -> Mode:
        value = self.take("mode")
        if value is None:
            return Mode.LIVE
        if value not in (Mode.LIVE.value, Mode.TEST.value) or isinstance(value, JSONNumber):
            raise InvalidParameter('mode must be "live" or "test"', "mode")
        return Mode(value)

    def metadata(self) -> dict[str, str]:
        value = self.take("metadata")
        if value is None:
            return {}
        return validate_metadata(value)

    def done(self) -> None:
        if self._body:
            name = sorted(self._body)[0]
            raise InvalidParameter(f"unknown parameter {name[:40]!r}", name[:40])


def validate_metadata(value: Any) -> dict[str, str]:
    """Metadata is a flat object of string values, bounded in size."""
    if not isinstance(value, dict):
        raise InvalidParameter("metadata must be an object of strings", "metadata")
    if len(value) > MAX_METADATA_KEYS:
        raise InvalidParameter(f"metadata has more than {MAX_METADATA_KEYS} keys", "metadata")
    for key, item in value.items():
        if not 1 <= len(key) <= MAX_METADATA_KEY_CHARS or "\x00" in key:
            raise InvalidParameter(
                f"metadata keys must have 1 to {MAX_METADATA_KEY_CHARS} characters", "metadata"
            )
        if not isinstance(item, str) or isinstance(item, JSONNumber):
            raise InvalidParameter("metadata values must be strings", "metadata")
        if len(item) > MAX_METADATA_VALUE_CHARS or "\x00" in item:
            raise InvalidParameter(
                f"metadata values must have at most {MAX_METADATA_VALUE_CHARS} characters",
                "metadata",
            )
    return {str(k): str(v) for k, v in value.items()}


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
