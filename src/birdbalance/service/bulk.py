"""``POST /v1/bulk``: reading a bulk request into the store's operations, and rendering
its answer (which the store keeps for replays)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import msgspec

from birdbalance import bulk_requests as bulk
from birdbalance.errors import InvalidParameter, ServiceError
from birdbalance.ledger import EntryKind
from birdbalance.records import (
    BulkOp,
    BulkOutcome,
    Idempotency,
    NewCapture,
    NewVoid,
    PostedEntry,
)
from birdbalance.representations import bulk_answer_shape
from birdbalance.request_shapes import (
    RequestBody,
    given,
    metadata_of,
    read,
    set_or_none,
)
from birdbalance.service.inputs import fingerprint, minor, new_entry, new_hold
from birdbalance.storage import Store
from birdbalance.validation import idempotency_key, resource_id

_KINDS = {
    bulk.BulkTopup: EntryKind.TOPUP,
    bulk.BulkCharge: EntryKind.CHARGE,
    bulk.BulkAdjustment: EntryKind.ADJUSTMENT,
    bulk.BulkRefund: EntryKind.REFUND,
}


class BulkPosting:
    """Bulk posting, beside the service's single writes."""

    store: Store

    def post_bulk(self, body: RequestBody, idem_key: str | None) -> BulkPosted:
        """Post a bulk request (its ``Idempotency-Key`` required unless it is a dry run):
        the answer's JSON, whether it replays an earlier request's answer, and its entry
        operations' outcomes for the metrics.

        A body that is not a bulk request (malformed, unknown fields, wrong types, no or
        over 1,000 operations, a last operation that links to nothing) is refused whole.
        An operation whose own values are wrong (an amount, an id, its key) is refused on
        its own, as its single write would be, and fails its linked group.
        """
        request = read(bulk.NewBulk, body)
        if request.operations[-1].linked:
            raise InvalidParameter(
                f"operations[{len(request.operations) - 1}] is linked to nothing: a linked"
                " group ends at an operation without linked",
                "operations",
            )
        checked = idempotency_key(idem_key, required=not request.dry_run)
        idem = None
        if checked is not None and not request.dry_run:
            idem = Idempotency(checked, fingerprint("post_bulk", "", given(request)))
        groups: list[list[BulkOp | ServiceError]] = [[]]
        for operation in request.operations:
            groups[-1].append(_operation(operation))
            if not operation.linked:
                groups.append([])
        groups.pop()  # the empty group after the last operation
        tally: Counter[tuple[str, str]] = Counter()

        def answer(outcome: BulkOutcome) -> bytes:
            for operation, result in zip(request.operations, outcome.results, strict=True):
                kind = _KINDS.get(type(operation))
                if kind is not None:
                    tally[kind.value, _outcome(result)] += 1
            # Encoded from the shape in one step (a thousand results): the same JSON as
            # rendering it first, at a fraction of the cost.
            return msgspec.json.encode(bulk_answer_shape(request.dry_run, outcome))

        posted, replayed = self.store.post_bulk(groups, idem, answer, dry_run=request.dry_run)
        if replayed:  # the stored answer: every entry operation is a replay now
            for operation in request.operations:
                if (kind := _KINDS.get(type(operation))) is not None:
                    tally[kind.value, "replayed"] += 1
        return BulkPosted(posted, replayed, tally if not request.dry_run else Counter())


@dataclass(frozen=True, slots=True)
class BulkPosted:
    """A bulk request's answer (JSON), whether it was a replay, and how its entry
    operations ended, by (kind, outcome) as ``birdbalance_ledger_entries_total`` counts."""

    answer: bytes
    replayed: bool
    outcomes: Counter[tuple[str, str]]


def _outcome(result: object) -> str:
    if isinstance(result, ServiceError):
        return "failed" if result.status_code >= 500 else "refused"
    assert isinstance(result, PostedEntry)
    return "replayed" if result.replayed else "posted"


def _operation(operation: bulk.Operation) -> BulkOp | ServiceError:
    """An operation as the store posts it, with its own idempotency; or its refusal."""
    try:
        return _read_operation(operation)
    except ServiceError as exc:
        return exc


def _read_operation(operation: bulk.Operation) -> BulkOp:
    key = idempotency_key(operation.idempotency_key, required=True)
    assert key is not None
    said = bulk.single_body(operation)
    if isinstance(operation, bulk.BulkHold):
        account_id = resource_id(operation.account, "account")
        hold = new_hold(account_id, operation)
        return hold, Idempotency(key, fingerprint("create_hold", account_id, said))
    if isinstance(operation, bulk.BulkCapture):
        hold_id = resource_id(operation.hold, "hold")
        capture = NewCapture(
            hold_id,
            minor(operation.amount, "amount"),
            set_or_none(operation.reference),
            metadata_of(operation.metadata),
        )
        return capture, Idempotency(key, fingerprint("capture_hold", hold_id, said))
    if isinstance(operation, bulk.BulkVoid):
        hold_id = resource_id(operation.hold, "hold")
        return NewVoid(hold_id), Idempotency(key, fingerprint("void_hold", hold_id, said))
    assert isinstance(operation, bulk.EntryOperation)
    kind = _KINDS[type(operation)]
    account_id = resource_id(operation.account, "account")
    entry = new_entry(account_id, kind, operation)
    return entry, Idempotency(key, fingerprint(f"post_{kind.value}", account_id, said))
