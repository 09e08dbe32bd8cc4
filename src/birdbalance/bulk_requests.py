"""The body of ``POST /v1/bulk``, defined once: validation, the OpenAPI components and
the operations' idempotency fingerprints all come from these models.

Each operation is its single write's body (:mod:`birdbalance.request_shapes`) plus what a
path and a header carry there: ``type`` (the operation), ``account`` or ``hold`` (its
target) and ``idempotency_key``, and ``linked`` (this operation and the next succeed or
fail together). Its fingerprint is the one its single write would have, so a key used by
``POST /v1/accounts/{id}/charges`` and by a bulk charge is the same request.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

from birdbalance.errors import InvalidParameter, MissingParameter, ServiceError
from birdbalance.request_shapes import (
    Amount,
    Body,
    Metadata,
    ModeName,
    Reference,
    SecondsText,
    given,
    read,
    schema_hook,
)
from birdbalance.storage.bulk import MAX_BULK_OPERATIONS
from birdbalance.validation import MAX_IDEMPOTENCY_KEY_CHARS

#: Fields an operation carries that its single write takes from its path or headers.
_ENVELOPE: Final = ("type", "account", "hold", "idempotency_key", "linked")

IdempotencyKey = Annotated[
    str,
    msgspec.Meta(
        description=f"This operation's own Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY_CHARS}"
        " printable ASCII characters, in one namespace with the single writes' keys.",
    ),
]
AccountId = Annotated[str, msgspec.Meta(description="The account (acc_…).")]
HoldId = Annotated[str, msgspec.Meta(description="The hold (hld_…).")]
Linked = Annotated[
    bool,
    msgspec.Meta(
        description="Link this operation to the next: a linked group (ending at the first"
        " operation without linked) succeeds or fails as one."
    ),
]


class Operation(Body, tag_field="type"):
    idempotency_key: IdempotencyKey
    linked: Linked = False


class EntryOperation(Operation, kw_only=True):
    account: AccountId
    amount: Amount
    mode: ModeName | msgspec.UnsetType | None = msgspec.UNSET
    reference: Reference | msgspec.UnsetType | None = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType | None = msgspec.UNSET


class BulkTopup(EntryOperation, tag="topup"):
    """A top-up (``POST /v1/accounts/{id}/topups``)."""


class BulkCharge(EntryOperation, tag="charge"):
    """A charge (``POST /v1/accounts/{id}/charges``)."""


class BulkAdjustment(EntryOperation, tag="adjustment"):
    """An adjustment; its amount may be negative."""


class BulkRefund(EntryOperation, tag="refund", kw_only=True):
    """A refund of all or part of a charge."""

    charge: Annotated[str, msgspec.Meta(description="The charge's id (ent_…).")]


class BulkHold(Operation, tag="hold", kw_only=True):
    """A hold (``POST /v1/accounts/{id}/holds``)."""

    account: AccountId
    amount: Amount
    expires_in: SecondsText | msgspec.UnsetType | None = msgspec.UNSET
    mode: ModeName | msgspec.UnsetType | None = msgspec.UNSET
    reference: Reference | msgspec.UnsetType | None = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType | None = msgspec.UNSET


class BulkCapture(Operation, tag="capture", kw_only=True):
    """Capture all of a hold (no ``amount``) or part of it."""

    hold: HoldId
    amount: Amount | msgspec.UnsetType | None = msgspec.UNSET
    reference: Reference | msgspec.UnsetType | None = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType | None = msgspec.UNSET


class BulkVoid(Operation, tag="void", kw_only=True):
    """Void a hold."""

    hold: HoldId


BulkOperation = (
    BulkTopup | BulkCharge | BulkAdjustment | BulkRefund | BulkHold | BulkCapture | BulkVoid
)


class NewBulk(Body):
    """Up to 1,000 ledger operations, posted in order in one transaction."""

    operations: Annotated[
        list[BulkOperation], msgspec.Meta(min_length=1, max_length=MAX_BULK_OPERATIONS)
    ]
    dry_run: Annotated[
        bool,
        msgspec.Meta(
            description="Answer each operation's outcome and the resulting balances, and"
            " write nothing."
        ),
    ] = False


def single_body(operation: Operation) -> dict[str, Any]:
    """What the operation's single write would have said in its body (its fingerprint)."""
    said = given(operation)
    for name in _ENVELOPE:
        said.pop(name, None)
    return said


def schemas() -> dict[str, Any]:
    """The JSON Schemas of :class:`NewBulk` and its operations, by name."""
    _, components = msgspec.json.schema_components(
        (NewBulk,),
        schema_hook=schema_hook,
        ref_template="#/components/schemas/{name}",
    )
    return components


def read_operation(value: dict[str, Any]) -> Operation:
    """One operation alone, refused as its request would refuse it (``birdbalance import``
    checks each line before posting, so one bad line never refuses a whole request)."""
    try:
        operation: Operation = read(NewBulk, {"operations": [value]}).operations[0]
    except (InvalidParameter, MissingParameter) as exc:
        described = exc.description.replace("operations[0].", "").replace("operations.", "")
        raise type(exc)(described, exc.parameter) from None
    except ServiceError as exc:
        raise InvalidParameter(exc.description, exc.parameter) from None
    return operation
