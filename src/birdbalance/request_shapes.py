"""The admin API's request bodies, each defined once as a typed model.

The same models serve three ends:

- **validation**: :func:`read` turns a JSON body (bytes, from HTTP) or a mapping (from the
  CLI) into a model, refusing unknown fields, wrong types and out-of-bounds text with a
  MessageBird-shaped error that names the parameter;
- **the OpenAPI document**: :func:`schemas` gives the request components, with
  ``required``, exact types and the same limits the decoder enforces;
- **idempotency**: :func:`given` is what a body said (the fields it set), which the
  ``Idempotency-Key`` fingerprint hashes.

Amounts stay exact text (:class:`AmountText`): a JSON number reaches the strict grammar of
:mod:`birdbalance.money` as the digits it was written with, never through a float. Whole
seconds (:class:`SecondsText`) are kept as text too, so a body's fingerprint is the same
whether it wrote ``60`` or ``"60"``. Ids are plain text here: a malformed id is "not
found" (404), which the operations decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec

from birdbalance.alerts import EventType
from birdbalance.errors import BadRequest
from birdbalance.ledger import Mode, Payment
from birdbalance.money import AMOUNT_PATTERN, SCALE
from birdbalance.records import TokenScope
from birdbalance.request_errors import refusal as refusal
from birdbalance.targets import MAX_URL_CHARS
from birdbalance.validation import (
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_NAME_CHARS,
    MAX_REFERENCE_CHARS,
)

#: How long a hold lives unless the request says otherwise (delivery reports can be slow),
#: and how long a rotated key keeps working beside its replacement; each at most 30 days.
DEFAULT_HOLD_EXPIRY_S: Final = 24 * 3600
MAX_HOLD_EXPIRY_S: Final = 30 * 24 * 3600
DEFAULT_ROTATION_OVERLAP_S: Final = 24 * 3600
MAX_ROTATION_OVERLAP_S: Final = 30 * 24 * 3600
#: A recharge is disabled after this many failures in a row, unless the rule says.
DEFAULT_RECHARGE_MAX_FAILURES: Final = 3
MAX_RECHARGE_MAX_FAILURES: Final = 100
MAX_REASON_CHARS: Final = 500
MAX_ASSET_CHARS: Final = 16
#: Longer whole-second texts are refused before ``int`` reads them.
MAX_SECONDS_DIGITS: Final = 9

#: No NUL: PostgreSQL's text cannot hold it (the write would fail, not the request).
_NO_NUL: Final = "^[^\\x00]*$"


class AmountText(str):
    """An amount as written: a JSON string, or the digits of a JSON number."""

    __slots__ = ()


class SecondsText(str):
    """A whole number of seconds as written: a JSON integer or a string of digits."""

    __slots__ = ()


class _JSONNumber(str):
    """A JSON number's text (the decoder keeps it rather than make a float)."""

    __slots__ = ()


Reference = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_REFERENCE_CHARS,
        pattern=_NO_NUL,
        description="Your own reference (an invoice, a message id).",
    ),
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_CHARS, pattern=_NO_NUL)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_REASON_CHARS, pattern=_NO_NUL)]
Amount = Annotated[
    AmountText,
    msgspec.Meta(
        description=f"Exact decimal amount in major units, at most {SCALE} decimals."
        " A JSON number is read by the same grammar, from the digits written.",
        examples=["9.2"],
    ),
]
Metadata = Annotated[
    dict[
        Annotated[
            str, msgspec.Meta(min_length=1, max_length=MAX_METADATA_KEY_CHARS, pattern=_NO_NUL)
        ],
        Annotated[str, msgspec.Meta(max_length=MAX_METADATA_VALUE_CHARS, pattern=_NO_NUL)],
    ],
    msgspec.Meta(max_length=MAX_METADATA_KEYS, description="Your own string pairs."),
]
ModeName = Annotated[Mode, msgspec.Meta(description="The ledger (default live).")]


class Body(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A request body; fields a body leaves out stay ``UNSET``."""


#: A body as it arrives: JSON bytes (HTTP) or a mapping (the CLI).
RequestBody = bytes | Mapping[str, Any]


_PARENT: Final = "Make it a sub-account of this account (same asset, three levels at most)."
_BALANCE: Final = (
    "A sub-account's balance: its own (the default, funded by transfers), or `shared`:"
    " it spends its parent's balance, within its `spending_limit` if it has one."
)


class SpendingLimit(Body):
    """At most ``amount`` of net usage (charges less refunds) per UTC day, UTC month or
    all time: a shared sub-account's share of its parent's balance."""

    amount: Amount
    period: Literal["day", "month", "all"]


class NewAccount(Body):
    payment: Payment
    type: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=MAX_ASSET_CHARS,
            description="credits, euros, pounds, dollars or an ISO-4217 code",
        ),
    ]
    name: Name | msgspec.UnsetType | None = msgspec.UNSET
    credit_limit: (
        Annotated[Amount, msgspec.Meta(description="Postpaid only.")] | msgspec.UnsetType | None
    ) = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType | None = msgspec.UNSET
    parent: Annotated[str, msgspec.Meta(description=_PARENT)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    balance: (
        Annotated[Literal["own", "shared"], msgspec.Meta(description=_BALANCE)]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    spending_limit: (
        Annotated[SpendingLimit, msgspec.Meta(description="Shared sub-accounts only.")]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET


class NewKey(Body):
    mode: ModeName | msgspec.UnsetType | None = msgspec.UNSET


class RotateKey(Body):
    expires_in: (
        Annotated[
            SecondsText,
            msgspec.Meta(
                description="How long the old key keeps working beside the new one"
                f" (0: it stops now; default {DEFAULT_ROTATION_OVERLAP_S}).",
                extra_json_schema={"minimum": 0, "maximum": MAX_ROTATION_OVERLAP_S},
            ),
        ]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET


class NewToken(Body):
    name: Name
    scope: TokenScope
    account: str | msgspec.UnsetType | None = msgspec.UNSET


class NewEntry(Body):
    """A top-up, charge or adjustment (an adjustment's amount may be negative)."""

    amount: Amount
    mode: ModeName | msgspec.UnsetType | None = msgspec.UNSET
    reference: Reference | msgspec.UnsetType | None = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType | None = msgspec.UNSET


class NewRefund(NewEntry, kw_only=True):
    """A refund of all or part of a charge."""

    charge: Annotated[str, msgspec.Meta(description="The charge's id (ent_…).")]


class NewTransfer(Body):
    """Move ``amount`` from one account's ledger to another's (one asset, one mode)."""

    from_: Annotated[str, msgspec.Meta(description="The account the amount leaves.")] = (
        msgspec.field(name="from")
    )
    to: Annotated[str, msgspec.Meta(description="The account the amount reaches.")]
    amount: Amount
    mode: ModeName | msgspec.UnsetType | None = msgspec.UNSET
    reference: Reference | msgspec.UnsetType | None = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType | None = msgspec.UNSET


class NewHold(Body):
    amount: Amount
    expires_in: (
        Annotated[
            SecondsText,
            msgspec.Meta(
                description=f"Seconds until the hold expires (default {DEFAULT_HOLD_EXPIRY_S}).",
                extra_json_schema={"minimum": 1, "maximum": MAX_HOLD_EXPIRY_S},
            ),
        ]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    mode: ModeName | msgspec.UnsetType | None = msgspec.UNSET
    reference: Reference | msgspec.UnsetType | None = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType | None = msgspec.UNSET


class CaptureHold(Body):
    """Charge all of a hold (no ``amount``) or part of it."""

    amount: Amount | msgspec.UnsetType | None = msgspec.UNSET
    reference: Reference | msgspec.UnsetType | None = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType | None = msgspec.UNSET


class VoidHold(Body):
    """Release a hold: no fields."""


class NewRecharge(Body):
    """Auto-recharge: ``topup.requested`` when the rule goes low, for a fixed ``amount``
    or up to a level (``up_to``; one of them); disabled after ``max_failures`` failures
    in a row."""

    amount: Amount | msgspec.UnsetType | None = msgspec.UNSET
    up_to: Amount | msgspec.UnsetType | None = msgspec.UNSET
    max_failures: (
        Annotated[int, msgspec.Meta(ge=1, le=MAX_RECHARGE_MAX_FAILURES)] | msgspec.UnsetType | None
    ) = msgspec.UNSET


class NewAlert(Body):
    below: Annotated[Amount, msgspec.Meta(description="balance.low fires once below this.")]
    hysteresis: (
        Annotated[
            Amount,
            msgspec.Meta(description="balance.recovered fires once above below + hysteresis."),
        ]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    mode: ModeName | msgspec.UnsetType | None = msgspec.UNSET
    recharge: NewRecharge | msgspec.UnsetType | None = msgspec.UNSET


class RechargeFailure(Body):
    reason: Reason | msgspec.UnsetType | None = msgspec.UNSET


class NewWebhook(Body):
    url: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=MAX_URL_CHARS,
            pattern=_NO_NUL,
            extra_json_schema={"format": "uri"},
            description="http(s):// or mailto:",
        ),
    ]
    account: (
        Annotated[str, msgspec.Meta(description="Only this account's events (default all).")]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    events: (
        Annotated[
            list[EventType] | str,
            msgspec.Meta(
                description="Only these types (default all); a comma-separated string is"
                " read the same."
            ),
        ]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET


#: Every request model, for the OpenAPI document.
MODELS: Final = (
    NewAccount,
    SpendingLimit,
    NewKey,
    RotateKey,
    NewEntry,
    NewRefund,
    NewTransfer,
    NewHold,
    CaptureHold,
    VoidHold,
    NewAlert,
    NewRecharge,
    RechargeFailure,
    NewWebhook,
)

B = TypeVar("B", bound=Body)


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is AmountText:
        if isinstance(value, str):  # a string, or a JSON number's text
            return AmountText(value)
        if isinstance(value, int) and not isinstance(value, bool):  # a big integer
            return AmountText(str(value))
        raise ValueError('must be a decimal string such as "9.2"')
    if kind is SecondsText:
        if isinstance(value, int) and not isinstance(value, bool):
            return SecondsText(str(value))
        if isinstance(value, str) and not isinstance(value, _JSONNumber):
            return SecondsText(value)
        raise ValueError("must be a whole number of seconds")
    raise NotImplementedError(kind)


_DECODERS: dict[type, msgspec.json.Decoder[Any]] = {}


def read(model: type[B], body: RequestBody) -> B:
    """``body`` (JSON bytes, empty meaning ``{}``, or a mapping) as ``model``, or the
    error that says which parameter is wrong and why."""
    try:
        if isinstance(body, bytes):
            decoder = _DECODERS.get(model)
            if decoder is None:
                decoder = _DECODERS[model] = msgspec.json.Decoder(
                    model, dec_hook=_dec_hook, float_hook=_JSONNumber
                )
            return decoder.decode(body if body.strip() else b"{}")  # type: ignore[no-any-return]
        return msgspec.convert(dict(body), model, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:
        raise refusal(model, str(exc)) from None
    except msgspec.DecodeError:
        raise BadRequest("the request body is not valid UTF-8 JSON") from None


def given(body: msgspec.Struct) -> dict[str, Any]:
    """What a body said: the fields it set (``null`` included), as JSON values."""
    value = msgspec.to_builtins(body, enc_hook=str)
    assert isinstance(value, dict)
    return value


def mode_of(value: Mode | msgspec.UnsetType | None) -> Mode:
    """A body's ``mode`` (live unless it says test)."""
    return Mode.TEST if value is Mode.TEST else Mode.LIVE


def metadata_of(value: dict[str, str] | msgspec.UnsetType | None) -> dict[str, str]:
    """A body's ``metadata`` (none: empty)."""
    return value if isinstance(value, dict) else {}


def set_or_none(value: Any) -> Any:
    """``UNSET`` as ``None``: an absent field and a ``null`` mean the same."""
    return None if value is msgspec.UNSET else value


def schemas() -> dict[str, Any]:
    """The JSON Schemas of :data:`MODELS`, by name (OpenAPI request components)."""
    _, components = msgspec.json.schema_components(
        MODELS, schema_hook=schema_hook, ref_template="#/components/schemas/{name}"
    )
    return components


def schema_hook(kind: type) -> dict[str, Any]:
    """The JSON Schema of the texts the models keep as written (amounts, seconds)."""
    if kind is AmountText:
        return {"type": "string", "pattern": AMOUNT_PATTERN}
    if kind is SecondsText:
        return {"type": ["integer", "string"], "pattern": f"^[0-9]{{1,{MAX_SECONDS_DIGITS}}}$"}
    raise NotImplementedError(kind)
