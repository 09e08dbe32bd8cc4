"""Concurrent clients against one server process: no overdraft, one entry per key."""

from __future__ import annotations

import asyncio

import httpx

from tests.servers import ADMIN_TOKEN, Admin, Server

CLIENTS = 64
FUNDED_FOR = 23


async def _race(server: Server, path: str, keys: list[str]) -> list[httpx.Response]:
    """POST ``{"amount": "1"}`` to ``path`` once per key, all at the same time."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    limits = httpx.Limits(max_connections=len(keys))
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, limits=limits, timeout=30
    ) as client:
        return await asyncio.gather(
            *(
                client.post(path, json={"amount": "1"}, headers={"Idempotency-Key": key})
                for key in keys
            )
        )


async def _charges(server: Server, account_id: str, keys: list[str]) -> list[httpx.Response]:
    return await _race(server, f"/v1/accounts/{account_id}/charges", keys)


def test_no_overdraft_under_concurrent_charges(server: Server, admin: Admin) -> None:
    aid = admin.account()["id"]
    admin.topup(aid, str(FUNDED_FOR))
    answers = asyncio.run(_charges(server, aid, [f"race-{aid}-{i}" for i in range(CLIENTS)]))
    ok = [r for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code == 422]
    assert len(ok) == FUNDED_FOR and len(refused) == CLIENTS - FUNDED_FOR
    assert all(r.json()["errors"][0]["code"] == 25 for r in refused)
    after = sorted(int(r.json()["balance"]["amount"]) for r in ok)
    assert after == list(range(FUNDED_FOR))  # every intermediate balance once, none below 0
    account = admin.http.get(f"/v1/accounts/{aid}").json()
    assert account["balances"]["live"] == {
        "amount": "0",
        "pending": "0",
        "available": "0",
        "entries": FUNDED_FOR + 1,
    }


def test_one_idempotency_key_from_16_clients_writes_once(server: Server, admin: Admin) -> None:
    aid = admin.account()["id"]
    admin.topup(aid, "100")
    answers = asyncio.run(_charges(server, aid, ["same-key-" + aid] * 16))
    assert {r.status_code for r in answers} == {201}
    assert len({r.content for r in answers}) == 1
    account = admin.http.get(f"/v1/accounts/{aid}").json()
    assert account["balances"]["live"] == {
        "amount": "99",
        "pending": "0",
        "available": "99",
        "entries": 2,
    }


def test_no_overdraft_through_concurrent_holds(server: Server, admin: Admin) -> None:
    aid = admin.account()["id"]
    admin.topup(aid, str(FUNDED_FOR))
    keys = [f"hold-race-{aid}-{i}" for i in range(CLIENTS)]
    answers = asyncio.run(_race(server, f"/v1/accounts/{aid}/holds", keys))
    ok = [r for r in answers if r.status_code == 201]
    refused = [r for r in answers if r.status_code == 422]
    assert len(ok) == FUNDED_FOR and len(refused) == CLIENTS - FUNDED_FOR
    assert all(r.json()["errors"][0]["code"] == 25 for r in refused)
    ledger = admin.http.get(f"/v1/accounts/{aid}").json()["balances"]["live"]
    assert ledger == {
        "amount": str(FUNDED_FOR),
        "pending": str(FUNDED_FOR),
        "available": "0",
        "entries": 1,
    }
    refused_charge = admin.post(aid, "charges", amount="0.000001")
    assert refused_charge.status_code == 422
