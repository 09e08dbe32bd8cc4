"""The typed admin clients call every ``/v1`` operation of a real server, and every write
is applied once even when each first answer is lost.

One scenario runs through all of them (accounts, keys, the ledger, reports, holds,
sub-accounts and spending limits, transfers, bulk, alerts, events, webhooks,
deliveries, the audit log), against a real server on each engine, with
:class:`AdminClient` and with :class:`AsyncAdminClient`. The transport under the client
is real, with one twist: the first answer to every write is thrown away after the
server has applied it, as a connection lost on the way back would. The client retries,
with the same ``Idempotency-Key`` and the same bytes, and the server replays. The
scenario's exact figures (balances, counts, failures) prove nothing was applied twice;
the record of requests proves every operation of the OpenAPI document was called.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import httpx
import msgspec
import pytest

from birdbalance import AdminClient, AsyncAdminClient, shapes
from birdbalance.http.openapi import openapi_document
from tests.receivers import Receiver
from tests.servers import ADMIN_TOKEN, Server

WRITES = frozenset({"POST", "PUT", "DELETE", "PATCH"})


def _operation_ids() -> list[tuple[str, re.Pattern[str], str]]:
    found = []
    for path, operations in openapi_document()["paths"].items():
        if path.startswith("/v1/"):
            pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
            for method, operation in operations.items():
                found.append((method.upper(), pattern, operation["operationId"]))
    return found


class Record:
    """What went over the wire: each request's operation, key and body; and the first
    answer to each write thrown away (after the server applied it)."""

    def __init__(self) -> None:
        self.operations: set[str] = set()
        self.writes: dict[str, list[bytes]] = {}
        self.lost = 0
        self._table = _operation_ids()

    def saw(self, request: httpx.Request) -> bool:
        """Record ``request``; True if its answer is to be lost (a write's first)."""
        path = request.url.path
        names = [n for m, p, n in self._table if m == request.method and p.match(path)]
        assert len(names) == 1, (request.method, path, names)
        self.operations.add(names[0])
        if request.method not in WRITES:
            return False
        key = request.headers["idempotency-key"]
        sent = self.writes.setdefault(key, [])
        sent.append(request.content)
        return len(sent) == 1


class Losing(httpx.BaseTransport):
    def __init__(self, record: Record) -> None:
        self.record = record
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        lose = self.record.saw(request)
        response = self.inner.handle_request(request)
        if lose:
            response.read()
            response.close()
            self.record.lost += 1
            raise httpx.ReadError("the answer was lost on its way back", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncLosing(httpx.AsyncBaseTransport):
    def __init__(self, record: Record) -> None:
        self.record = record
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        lose = self.record.saw(request)
        response = await self.inner.handle_async_request(request)
        if lose:
            await response.aread()
            await response.aclose()
            self.record.lost += 1
            raise httpx.ReadError("the answer was lost on its way back", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class Awaited:
    """An :class:`AsyncAdminClient` called like the sync one: each call awaited on one
    event loop (the scenario is written once for both)."""

    def __init__(self, client: AsyncAdminClient, runner: asyncio.Runner) -> None:
        self._client = client
        self._runner = runner

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._runner.run(method(*args, **kwargs))

        return call


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    yield found
    found.stop()


def _wait(check: Callable[[], bool], timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def scenario(admin: AdminClient, receiver: Receiver, lost_answers: bool) -> None:
    """Every operation, with exact expectations (``admin``: an AdminClient, or an
    AsyncAdminClient behind :class:`Awaited`). Type-checked as the sync client."""
    tag = f"typed-{time.time_ns()}"
    made = admin.create_account(payment="prepaid", type="euros", name=tag, metadata={"t": "1"})
    assert isinstance(made, shapes.Account) and made.balances.live.available == "0"
    account = made.id
    assert admin.get_account(account).name == tag
    found = admin.list_accounts(search=tag, limit=10)
    assert [a.id for a in found.data] == [account] and found.has_more is False

    key = admin.create_key(account, mode="test")
    # A replay cannot show the secret again: only its digest is stored.
    if lost_answers:
        assert key.key is msgspec.UNSET
    else:
        assert isinstance(key.key, str) and key.key.startswith("test_")
    assert [k.id for k in admin.list_keys(account).data] == [key.id]
    rotated = admin.rotate_key(key.id, expires_in=0)
    assert rotated.previous.id == key.id and rotated.key.mode == "test"
    assert admin.revoke_key(rotated.key.id).status == "revoked"

    admin.create_topup(account, amount="25", reference="invoice-1")
    charge = admin.create_charge(
        account, amount=Decimal("0.0075"), reference="m-1", metadata={"country": "NL"}
    )
    assert charge.entry.kind == "charge" and charge.balance.amount == "24.9925"
    refund = admin.create_refund(
        account, charge=charge.entry.id, amount="0.0025", metadata={"country": "NL"}
    )
    assert refund.entry.refund_of == charge.entry.id
    adjusted = admin.create_adjustment(account, amount=-1, reference="fee")
    assert adjusted.balance.amount == "23.995"
    charges = admin.list_entries(account, kind="charge", limit=10)
    assert [e.id for e in charges.data] == [charge.entry.id]
    now = datetime.now(UTC)
    since = now - timedelta(days=1)
    assert admin.get_balance_at(account, at=now + timedelta(seconds=1)).amount == "23.995"
    statement = admin.get_statement(account, from_=since)
    assert statement.closing_balance == "23.995" and statement.counts.charge == 1
    usage = admin.get_usage_by(account, by="country", from_=since.isoformat())
    assert [(g.value, g.usage) for g in usage.data] == [("NL", "0.005")]
    assert admin.get_forecast(account).spendable == "23.995"
    assert admin.get_daily(account, days=7).data[-1].balance == "23.995"

    hold = admin.create_hold(account, amount="2", expires_in=600).hold
    captured = admin.capture_hold(hold.id, amount="1.5")
    assert captured.hold.status == "captured"
    assert isinstance(captured.balance, shapes.EntryBalance)
    assert captured.balance.amount == "22.495"
    voided = admin.void_hold(admin.create_hold(account, amount="3").hold.id)
    assert voided.hold.status == "voided"
    assert [h.id for h in admin.list_holds(account, status="captured").data] == [hold.id]
    assert admin.get_hold(hold.id).captured == "1.5"

    shared = admin.create_account(
        payment="prepaid",
        type="euros",
        parent=account,
        balance="shared",
        spending_limit={"amount": "5", "period": "day"},
    )
    limited = admin.set_spending_limit(shared.id, amount=Decimal("6"), period="month")
    assert limited.shared is not None and limited.shared.spending_limit is not None
    assert limited.shared.spending_limit.amount == "6"
    removed = admin.remove_spending_limit(shared.id).shared
    assert removed is not None and removed.spending_limit is None
    other = admin.create_account(payment="prepaid", type="euros", parent=account)
    moved = admin.create_transfer(from_=account, to=other.id, amount="1")
    assert moved.transfer.from_ == account and moved.legs[0].balance.amount == "21.495"
    assert [t.id for t in admin.list_transfers(account=account).data] == [moved.transfer.id]
    assert admin.get_transfer(moved.transfer.id).transfer.amount == "1"
    subs = admin.list_subaccounts(account)
    assert sorted(s.id for s in subs.data) == sorted([shared.id, other.id])

    bulk = admin.bulk([{"type": "charge", "account": account, "amount": "0.495"}])
    assert bulk.results[0].status == 201 and bulk.balances[0].available == "21"

    webhook = admin.create_webhook(url=receiver.url, account=account, events=["topup.requested"])
    assert isinstance(webhook.secret, str) and webhook.secret.startswith("whsec_")
    # 21 is below 100: the rule starts low and asks for a top-up at once.
    alert = admin.create_alert(account, below="100", recharge={"amount": "50"})
    receiver.wait_for(1)
    failed = admin.record_recharge_failure(alert.id, reason="card declined")
    assert failed.recharge is not None and failed.recharge.failures == 1
    assert [a.id for a in admin.list_alerts(account).data] == [alert.id]
    events = admin.list_events(account=account)
    asked = [e for e in events.data if e.type == "topup.requested"]
    assert len(asked) == 2 and asked[0].data.recharge is not msgspec.UNSET
    _wait(lambda: len(admin.list_deliveries(webhook=webhook.id, status="delivered").data) == 2)
    receiver.wait_for(2)
    delivery = admin.list_deliveries(webhook=webhook.id, status="delivered").data[-1]
    again = admin.redeliver(delivery.id)
    assert again.id == delivery.id and again.status in ("pending", "delivered")
    # Sent once more, not once per attempt of the call.
    _wait(lambda: len(receiver.received) >= 3)
    time.sleep(0.5)
    assert len(receiver.received) == 3
    new_secret = admin.rotate_webhook_secret(webhook.id).secret
    assert isinstance(new_secret, str) and new_secret != webhook.secret
    assert webhook.id in [w.id for w in admin.list_webhooks().data]
    assert admin.delete_webhook(webhook.id).id == webhook.id
    assert webhook.id not in [w.id for w in admin.list_webhooks().data]
    assert admin.delete_alert(alert.id).id == alert.id
    assert admin.list_alerts(account).data == []

    records = admin.list_audit(action="POST /v1/accounts/{account_id}/charges", limit=1)
    assert records.data and records.data[0].status == 201

    # Applied once each, whatever was retried: the figures of one run.
    final = admin.get_account(account)
    assert final.balances.live.amount == "21" and final.balances.live.pending == "0"
    assert final.balances.test.amount == "0"
    assert admin.list_entries(account, kind="charge").data[0].amount == "-0.495"
    assert len(admin.list_entries(account, limit=100).data) == 7
    assert len(admin.list_keys(account).data) == 2
    assert len(admin.list_holds(account).data) == 2
    assert admin.list_subaccounts(account).totals.accounts == 2


def _judge(record: Record, lost_answers: bool) -> None:
    every = {operation for _, _, operation in _operation_ids()}
    assert record.operations == every, every - record.operations
    if lost_answers:
        assert record.lost == len(record.writes) >= 25
        for key, sent in record.writes.items():
            assert len(sent) == 2 and sent[0] == sent[1], key


def test_the_sync_client_calls_every_operation_once_each_despite_lost_answers(
    server: Server, receiver: Receiver
) -> None:
    record = Record()
    with AdminClient(server.url, ADMIN_TOKEN, transport=Losing(record), backoff_s=0.01) as admin:
        scenario(admin, receiver, lost_answers=True)
    _judge(record, lost_answers=True)


def test_the_async_client_calls_every_operation_once_each_despite_lost_answers(
    server: Server, receiver: Receiver
) -> None:
    record = Record()
    with asyncio.Runner() as runner:
        client = AsyncAdminClient(
            server.url, ADMIN_TOKEN, transport=AsyncLosing(record), backoff_s=0.01
        )
        try:
            scenario(cast(AdminClient, Awaited(client, runner)), receiver, lost_answers=True)
        finally:
            runner.run(client.aclose())
    _judge(record, lost_answers=True)


def test_without_losses_a_new_key_shows_its_secret_once(server: Server) -> None:
    with AdminClient(server.url, ADMIN_TOKEN) as admin:
        account = admin.create_account(payment="postpaid", type="credits", credit_limit=100)
        key = admin.create_key(account.id)
        assert isinstance(key.key, str) and len(key.key) == 25
        assert admin.list_keys(account.id).data[0].key is msgspec.UNSET
