"""The types the admin API's response shapes are made of (:mod:`birdbalance.shapes`
re-exports them): amounts, ids, times, metadata, the enumerations, and the base model."""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from birdbalance import ledger, records
from birdbalance.alerts import EventType
from birdbalance.money import AMOUNT_PATTERN, SCALE
from birdbalance.validation import MAX_METADATA_KEYS, MAX_METADATA_VALUE_CHARS

ID_PATTERN: Final = r"^[a-z]{3}_[0-9A-Z]{26}$"

Amount = Annotated[
    str,
    msgspec.Meta(
        pattern=AMOUNT_PATTERN,
        description=f"Exact decimal amount in major units, at most {SCALE} decimals.",
        examples=["9.2"],
    ),
]
Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
Timestamp = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]
Day = Annotated[str, msgspec.Meta(extra_json_schema={"format": "date"})]
Metadata = Annotated[
    dict[str, Annotated[str, msgspec.Meta(max_length=MAX_METADATA_VALUE_CHARS)]],
    msgspec.Meta(max_length=MAX_METADATA_KEYS),
]


Mode = ledger.Mode
Payment = ledger.Payment
Kind = ledger.EntryKind
HoldState = ledger.HoldStatus
EventKind = EventType
# Computed text, so typed ``str``; the schema lists the values.
KeyStatus = Annotated[
    str, msgspec.Meta(extra_json_schema={"enum": ["live", "expiring", "expired", "revoked"]})
]
DeliveryStatus = Annotated[
    str, msgspec.Meta(extra_json_schema={"enum": list(records.DELIVERY_STATUSES)})
]
AlertState = Annotated[str, msgspec.Meta(extra_json_schema={"enum": ["ok", "low"]})]
Scope = records.TokenScope


class _Shape(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A response shape: rendered in field order, ``UNSET`` fields left out."""
