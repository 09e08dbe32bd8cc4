"""``POST /v1/transfers`` and its listings: the requests, checked and read into the
store's transfer, and the answers."""

from __future__ import annotations

from birdbalance import request_shapes as bodies, shapes
from birdbalance.errors import InvalidParameter
from birdbalance.records import Idempotency, NewTransfer
from birdbalance.representations import page_shape, transfer_result_shape, transfer_shape
from birdbalance.request_shapes import (
    RequestBody,
    given,
    metadata_of,
    mode_of,
    read,
    set_or_none,
)
from birdbalance.service.inputs import fingerprint, id_page_size, minor
from birdbalance.storage import Store
from birdbalance.validation import idempotency_key, resource_id


class Transfers:
    """Transfers between two accounts' ledgers (a mixin of :class:`Service`)."""

    store: Store

    def create_transfer(self, body: RequestBody, idem_key: str | None) -> shapes.TransferResult:
        """Move an amount between two ledgers of one asset and mode (key required)."""
        key = idempotency_key(idem_key, required=True)
        assert key is not None
        request = read(bodies.NewTransfer, body)
        source = resource_id(request.from_, "from")
        target = resource_id(request.to, "to")
        amount = minor(request.amount, "amount")
        assert amount is not None
        if amount <= 0:
            raise InvalidParameter("amount must be greater than zero", "amount")
        new = NewTransfer(
            source,
            target,
            mode_of(request.mode),
            amount,
            set_or_none(request.reference),
            metadata_of(request.metadata),
        )
        idem = Idempotency(key, fingerprint("create_transfer", "", given(request)))
        return transfer_result_shape(self.store.transfer(new, idem))

    def get_transfer(self, transfer_id: str) -> shapes.TransferResult:
        return transfer_result_shape(self.store.get_transfer(resource_id(transfer_id, "transfer")))

    def list_transfers(
        self, *, account: str | None, cursor: str | None, limit: str | None
    ) -> shapes.Page[shapes.Transfer]:
        """Transfers newest first: all, or those from or to ``account``."""
        account_id = None if account is None else resource_id(account, "account")
        size = id_page_size(cursor, limit)
        page = self.store.list_transfers(account_id, cursor, size)
        return page_shape(page, [transfer_shape(t) for t in page.items])
