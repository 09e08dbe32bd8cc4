"""The admin API from Python: :class:`AdminClient` and :class:`AsyncAdminClient`.

::

    from birdbalance import AdminClient

    with AdminClient("http://127.0.0.1:8000", admin_token) as admin:
        account = admin.create_account(payment="prepaid", type="euros", name="Acme")
        admin.create_topup(account.id, amount="25")
        posted = admin.create_charge(account.id, amount="0.0075", reference="m-1")
        posted.balance.amount  # "24.9925"
        page = admin.list_entries(account.id, limit=50)

Every ``/v1`` operation is a typed method (:mod:`birdbalance.admin_api`, generated from
the OpenAPI document), answering the :mod:`birdbalance.shapes` model of its schema and
raising the client tree of :mod:`birdbalance.errors`, as :class:`birdbalance.Client`
does. Every write carries an ``Idempotency-Key`` (yours, or a fresh UUID made before the
first attempt), so the retries after a connection failure or a 5xx are applied once.

``bulk`` sends ``POST /v1/bulk``: every operation without an ``idempotency_key`` gets
one too, and the request its own ``Idempotency-Key`` (none for a dry run, which writes
nothing).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from birdbalance.admin_api import AdminOperations
from birdbalance.admin_api_async import AsyncAdminOperations
from birdbalance.admin_session import MAX_ANSWER_BYTES as MAX_ANSWER_BYTES, _Request, request
from birdbalance.shapes import BulkAnswer


def _bulk_request(
    operations: Sequence[Mapping[str, Any]], dry_run: bool, idempotency_key: str | None
) -> _Request:
    keyed = [
        {**op, "idempotency_key": op.get("idempotency_key") or str(uuid.uuid4())}
        for op in operations
    ]
    return request(
        "POST",
        "/v1/bulk",
        body={"operations": keyed, "dry_run": dry_run},
        idempotency_key=idempotency_key,
        keyed=not dry_run,
    )


class AdminClient(AdminOperations):
    """Synchronous admin client: every ``/v1`` operation. Use as a context manager, or
    :meth:`close`."""

    def bulk(
        self,
        operations: Sequence[Mapping[str, Any]],
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
    ) -> BulkAnswer:
        """``POST /v1/bulk``: each operation's result, in order, and the balances it left.

        Retried (the same request, keys and all) after connection failures and 5xx
        answers; ``timeout_s`` bounds the whole call, retries included.
        """
        return self._send(BulkAnswer, 200, _bulk_request(operations, dry_run, idempotency_key))

    post_bulk = bulk


class AsyncAdminClient(AsyncAdminOperations):
    """Asynchronous twin of :class:`AdminClient` (``async with``, or :meth:`aclose`)."""

    async def bulk(
        self,
        operations: Sequence[Mapping[str, Any]],
        *,
        dry_run: bool = False,
        idempotency_key: str | None = None,
    ) -> BulkAnswer:
        """:meth:`AdminClient.bulk`, awaited."""
        return await self._send(
            BulkAnswer, 200, _bulk_request(operations, dry_run, idempotency_key)
        )

    post_bulk = bulk
