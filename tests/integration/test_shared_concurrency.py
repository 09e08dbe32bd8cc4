"""Shared balances under concurrency, on both engines and two server nodes: the parent's
floor and each sub-account's period limit hold however the charges race, and transfers
racing those charges overdraw nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.servers import ADMIN_TOKEN, Admin, Server, cli


@contextmanager
def _two_nodes(database_url: str, tmp_path: Path) -> Iterator[tuple[Server, Server, Admin]]:
    """Two server nodes on one database and an admin client of the first; `verify` must
    be clean once they have stopped."""
    first = Server(db_url=database_url, log_path=tmp_path / "node1.log").start()
    second = Server(db_url=database_url, log_path=tmp_path / "node2.log")
    try:
        second.start()
        admin = Admin(first.url)
        yield first, second, admin
        admin.http.close()
    finally:
        second.stop()
        first.stop()
    verified = cli("verify", db_url=database_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _race(nodes: tuple[Server, Server], calls: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Send every call at once (one client each, alternating nodes); each outcome in
    order: "ok", or the MessageBird error code of a refusal."""

    async def one(n: int, path: str, body: dict[str, Any]) -> str:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Idempotency-Key": f"race-{n}"}
        async with httpx.AsyncClient(base_url=nodes[n % 2].url, timeout=60) as client:
            r = await client.post(path, json=body, headers=headers)
        if r.status_code == 201:
            return "ok"
        assert r.status_code == 422, r.text
        return f"code {r.json()['errors'][0]['code']}"

    async def everyone() -> list[str]:
        return list(await asyncio.gather(*(one(n, *call) for n, call in enumerate(calls))))

    return asyncio.run(everyone())


def _available(admin: Admin, account: str) -> Decimal:
    return Decimal(admin.http.get(f"/v1/accounts/{account}").json()["balances"]["live"]["amount"])


def test_64_charges_on_shared_sub_accounts_spend_exactly_the_parents_balance(
    database_url: str, tmp_path: Path
) -> None:
    """A parent funded for exactly 40; four shared sub-accounts (two limited to 8 a day);
    64 charges of 1 at once, 16 per sub-account, over two nodes: exactly 40 succeed, no
    limited one passes 8, and the parent ends at 0."""
    with _two_nodes(database_url, tmp_path) as (*nodes, admin):
        parent = admin.account()["id"]
        subs = [
            admin.account(
                parent=parent,
                balance="shared",
                **({"spending_limit": {"amount": "8", "period": "day"}} if n < 2 else {}),
            )["id"]
            for n in range(4)
        ]
        admin.topup(parent, "40")
        calls = [(f"/v1/accounts/{subs[n % 4]}/charges", {"amount": "1"}) for n in range(64)]
        outcomes = _race((nodes[0], nodes[1]), calls)
        assert Counter(outcomes) == {"ok": 40, "code 25": 24}, Counter(outcomes)
        per_sub = Counter(subs[n % 4] for n, o in enumerate(outcomes) if o == "ok")
        assert per_sub[subs[0]] <= 8 and per_sub[subs[1]] <= 8, per_sub
        assert _available(admin, parent) == 0
        for sub in subs:
            shown = admin.http.get(f"/v1/accounts/{sub}").json()["shared"]["live"]
            assert Decimal(shown["spent"]) == per_sub[sub]


def test_racing_charges_never_overrun_a_period_limit(database_url: str, tmp_path: Path) -> None:
    """A well-funded parent; a sub-account limited to 10 a month takes 40 concurrent
    charges of 1 (and a sibling limited to 5 all time takes 20): exactly 10 and 5 pass."""
    with _two_nodes(database_url, tmp_path) as (*nodes, admin):
        parent = admin.account()["id"]
        monthly = admin.account(
            parent=parent, balance="shared", spending_limit={"amount": "10", "period": "month"}
        )["id"]
        lifetime = admin.account(
            parent=parent, balance="shared", spending_limit={"amount": "5", "period": "all"}
        )["id"]
        admin.topup(parent, "1000")
        calls = [(f"/v1/accounts/{monthly}/charges", {"amount": "1"})] * 40 + [
            (f"/v1/accounts/{lifetime}/charges", {"amount": "1"})
        ] * 20
        outcomes = _race((nodes[0], nodes[1]), calls)
        assert outcomes[:40].count("ok") == 10 and outcomes[40:].count("ok") == 5, outcomes
        assert _available(admin, parent) == 1000 - 15


def test_transfers_racing_shared_charges_overdraw_nothing(
    database_url: str, tmp_path: Path
) -> None:
    """Transfers between a parent and another account race charges on the parent's shared
    sub-accounts and on the other account: neither ledger goes below zero, and every
    acknowledged operation is in the balances."""
    with _two_nodes(database_url, tmp_path) as (*nodes, admin):
        parent, other = admin.account()["id"], admin.account()["id"]
        subs = [admin.account(parent=parent, balance="shared")["id"] for _ in range(3)]
        admin.topup(parent, "20")
        admin.topup(other, "20")
        kinds = ("p->o", "o->p", "shared", "other")
        calls: list[tuple[str, dict[str, Any]]] = []
        for n in range(64):
            kind = kinds[n % 4]
            if kind == "p->o":
                calls.append(("/v1/transfers", {"from": parent, "to": other, "amount": "1"}))
            elif kind == "o->p":
                calls.append(("/v1/transfers", {"from": other, "to": parent, "amount": "1"}))
            elif kind == "shared":
                calls.append((f"/v1/accounts/{subs[n % 3]}/charges", {"amount": "1"}))
            else:
                calls.append((f"/v1/accounts/{other}/charges", {"amount": "1"}))
        outcomes = _race((nodes[0], nodes[1]), calls)
        done = Counter(kinds[n % 4] for n, o in enumerate(outcomes) if o == "ok")
        parent_now, other_now = _available(admin, parent), _available(admin, other)
        assert parent_now == 20 - done["p->o"] + done["o->p"] - done["shared"]
        assert other_now == 20 + done["p->o"] - done["o->p"] - done["other"]
        assert parent_now >= 0 and other_now >= 0
