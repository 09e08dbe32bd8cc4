"""Admin tokens confined to one account's subtree: inside it they work as any token of
their scope; outside it every route answers what an id that does not exist answers."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.receivers import Receiver
from tests.servers import Admin, Server, cli

#: Routes that name no resource in their path: each is checked by its own test below.
COLLECTIONS = {
    ("POST", "/v1/accounts"),
    ("GET", "/v1/accounts"),
    ("POST", "/v1/transfers"),
    ("GET", "/v1/transfers"),
    ("POST", "/v1/bulk"),
    ("GET", "/v1/events"),
    ("POST", "/v1/webhooks"),
    ("GET", "/v1/webhooks"),
    ("GET", "/v1/deliveries"),
    ("GET", "/v1/audit"),
}
#: Outside the admin API: an access key's, the probes'; /metrics is
#: refused to a confined token (below).
UNSCOPED = {"/balance", "/healthz", "/readyz", "/metrics"}


def token(server: Server, scope: str, account: str | None) -> str:
    args = ["tokens", "create", "--name", f"t-{scope}", "--scope", scope, "--json"]
    if account is not None:
        args += ["--account", account]
    made = cli(*args, db_url=server.db_url)
    assert made.returncode == 0, made.stderr
    found = json.loads(made.stdout)
    assert found["account"] == account
    return str(found["token"])


class World:
    """A platform P with a reseller R (whose token is confined to it) and a sibling S of
    R; R has customers C (own balance) and D (shared); O is another tree. Every kind of
    resource exists inside R's subtree and outside it."""

    def __init__(self, server: Server, admin: Admin, receiver: Receiver) -> None:
        self.platform = admin.account()["id"]
        self.reseller = admin.account(parent=self.platform)["id"]
        self.sibling = admin.account(parent=self.platform)["id"]
        self.customer = admin.account(parent=self.reseller)["id"]
        self.shared = admin.account(parent=self.reseller, balance="shared")["id"]
        self.other = admin.account()["id"]
        self.inside: dict[str, str] = {}
        self.outside: dict[str, list[str]] = {}
        for name, account in (("in", self.customer), ("out", self.other)):
            admin.topup(account, "100")
            key = admin.key(account)["id"]
            hold = admin.post(account, "holds", amount="1").json()["hold"]["id"]
            alert = admin.http.post(f"/v1/accounts/{account}/alerts", json={"below": "50"})
            hook = admin.http.post("/v1/webhooks", json={"url": receiver.url, "account": account})
            peer = self.reseller if name == "in" else self.platform
            admin.topup(peer, "10")
            transfer = admin.transfer(peer, account, "1").json()["transfer"]["id"]
            assert admin.post(account, "charges", amount="60").status_code == 201  # an event
            deliveries = admin.http.get(
                "/v1/deliveries", params={"webhook": hook.json()["id"]}
            ).json()["data"]
            found = {
                "key": key,
                "hold": hold,
                "alert": alert.json()["id"],
                "webhook": hook.json()["id"],
                "delivery": deliveries[0]["id"],
                "transfer": transfer,
            }
            if name == "in":
                self.inside = {"account": self.customer, **found}
            else:
                self.outside = {"account": [self.other, self.platform, self.sibling]}
                self.outside.update({kind: [value] for kind, value in found.items()})


@pytest.fixture
def receiver() -> Any:
    found = Receiver().start()
    yield found
    found.stop()


def _routes(server: Server) -> list[tuple[str, str]]:
    document = httpx.get(f"{server.url}/openapi.json").json()
    return [
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "delete")
    ]


def _fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)_id\}", lambda m: ids[m[1]], path)


def test_every_route_outside_the_subtree_is_not_found(
    server: Server, admin: Admin, receiver: Receiver
) -> None:
    world = World(server, admin, receiver)
    confined = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token(server, 'write', world.reseller)}"},
        timeout=30,
    )
    routes = _routes(server)
    assert {p for _, p in routes if not p.startswith("/v1/")} == UNSCOPED
    routes = [(m, p) for m, p in routes if p.startswith("/v1/")]
    resourced = [(m, p) for m, p in routes if (m, p) not in COLLECTIONS]
    assert set(routes) - set(resourced) == COLLECTIONS
    checked = 0
    for method, path in resourced:
        kinds = re.findall(r"\{(\w+)_id\}", path)
        assert kinds, path
        for kind in kinds:
            for outsider in world.outside[kind]:
                ids = {**world.inside, kind: outsider}
                headers = {"Idempotency-Key": f"out-{checked}"}
                r = confined.request(method, _fill(path, ids), json={}, headers=headers)
                # Exactly what an id that does not exist answers.
                missing = f"{outsider[:4]}{'0' * (len(outsider) - 4)}"
                ghost = confined.request(
                    method, _fill(path, {**ids, kind: missing}), json={}, headers=headers
                )
                assert r.status_code == ghost.status_code == 404, (method, path, r.text)
                error, ghost_error = r.json()["errors"][0], ghost.json()["errors"][0]
                assert error["code"] == ghost_error["code"], (method, path)
                assert error["parameter"] == ghost_error["parameter"], (method, path)
                assert (
                    error["description"].replace(outsider, missing) == (ghost_error["description"])
                ), (method, path)
                checked += 1
    # Inside the subtree the same routes work (a read of each kind of resource).
    for path in (
        f"/v1/accounts/{world.customer}",
        f"/v1/accounts/{world.shared}",
        f"/v1/accounts/{world.reseller}/subaccounts",
        f"/v1/holds/{world.inside['hold']}",
        f"/v1/transfers/{world.inside['transfer']}",
        f"/v1/accounts/{world.customer}/statement?from=2020-01-01T00:00:00Z",
    ):
        assert confined.get(path).status_code == 200, path
    assert confined.post(
        f"/v1/accounts/{world.shared}/charges",
        json={"amount": "1"},
        headers={"Idempotency-Key": "in-1"},
    ).status_code in (201, 422)  # the reseller's balance decides; it is found
    assert checked >= 40, checked
    confined.close()


def test_collections_see_only_the_subtree(server: Server, admin: Admin, receiver: Receiver) -> None:
    world = World(server, admin, receiver)
    as_token = token(server, "write", world.reseller)
    confined = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {as_token}"}, timeout=30
    )

    def error(r: httpx.Response, status: int, parameter: str) -> None:
        assert r.status_code == status, r.text
        assert r.json()["errors"][0]["parameter"] == parameter, r.text

    listed = confined.get("/v1/accounts", params={"limit": 100}).json()["data"]
    assert {a["id"] for a in listed} == {world.reseller, world.customer, world.shared}
    assert listed[0]["id"] == min(a["id"] for a in listed)
    assert confined.get("/v1/accounts", params={"search": world.other}).json()["data"] == []
    # New accounts: inside the subtree only.
    made = confined.post("/v1/accounts", json={"payment": "prepaid", "type": "euros",
                                               "parent": world.reseller})  # fmt: skip
    assert made.status_code == 201, made.text
    body = {"payment": "prepaid", "type": "euros"}
    error(confined.post("/v1/accounts", json=body), 403, "Authorization")
    error(confined.post("/v1/accounts", json={**body, "parent": world.sibling}), 404, "parent")
    # Transfers: both sides inside.
    key = {"Idempotency-Key": "t-1"}
    inside = {"from": world.reseller, "to": world.customer, "amount": "1"}
    error(confined.post("/v1/transfers", json={**inside, "to": world.other}, headers=key),
          404, "to")  # fmt: skip
    error(confined.post("/v1/transfers", json={**inside, "from": world.platform}, headers=key),
          404, "from")  # fmt: skip
    error(confined.get("/v1/transfers"), 422, "account")
    error(confined.get("/v1/transfers", params={"account": world.other}), 404, "account")
    assert confined.get("/v1/transfers", params={"account": world.customer}).status_code == 200
    # Events, deliveries, webhooks.
    error(confined.get("/v1/events"), 422, "account")
    error(confined.get("/v1/events", params={"account": world.sibling}), 404, "account")
    events = confined.get("/v1/events", params={"account": world.customer}).json()["data"]
    assert events and {e["data"]["account_id"] for e in events} == {world.customer}
    error(confined.get("/v1/deliveries"), 422, "webhook")
    outside_hook = world.outside["webhook"][0]
    error(confined.get("/v1/deliveries", params={"webhook": outside_hook}), 404, "webhook")
    hooks = confined.get("/v1/webhooks").json()["data"]
    assert [h["id"] for h in hooks] == [world.inside["webhook"]]
    error(confined.post("/v1/webhooks", json={"url": receiver.url}), 422, "account")
    error(confined.post("/v1/webhooks", json={"url": receiver.url, "account": world.other}),
          404, "account")  # fmt: skip
    # Bulk: one operation outside refuses the whole request, and writes nothing.
    before = admin.http.get(f"/v1/accounts/{world.other}").json()["balances"]["live"]
    ops = [
        {"type": "charge", "account": world.customer, "amount": "1", "idempotency_key": "b1"},
        {"type": "charge", "account": world.other, "amount": "1", "idempotency_key": "b2"},
    ]
    error(confined.post("/v1/bulk", json={"operations": ops}, headers={"Idempotency-Key": "b"}),
          404, "operations")  # fmt: skip
    capture = [{"type": "capture", "hold": world.outside["hold"][0], "idempotency_key": "b3"}]
    error(
        confined.post("/v1/bulk", json={"operations": capture}, headers={"Idempotency-Key": "c"}),
        404,
        "operations",
    )
    assert admin.http.get(f"/v1/accounts/{world.other}").json()["balances"]["live"] == before
    # The audit log: its own actions only; the process's metrics: not at all.
    actors = {r["actor"] for r in confined.get("/v1/audit").json()["data"]}
    assert len(actors) == 1 and actors != {"admin-token"}
    assert confined.get("/v1/audit", params={"actor": "admin-token"}).json()["data"] != []
    assert {r["actor"] for r in confined.get("/v1/audit", params={"actor": "admin-token"}).json()[
        "data"]} == actors  # fmt: skip
    error(confined.get("/metrics"), 403, "Authorization")
    # A read-only confined token reads its subtree and writes nothing.
    reader = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token(server, 'read', world.reseller)}"},
    )
    assert reader.get(f"/v1/accounts/{world.customer}").status_code == 200
    assert reader.get(f"/v1/accounts/{world.other}").status_code == 404
    r = reader.post(f"/v1/accounts/{world.customer}/charges", json={"amount": "1"},
                    headers={"Idempotency-Key": "r"})  # fmt: skip
    assert r.status_code == 403
    for client in (confined, reader):
        client.close()


def test_a_token_for_an_unknown_account_is_refused(server: Server) -> None:
    made = cli("tokens", "create", "--name", "x", "--scope", "read", "--account",
               "acc_" + "0" * 26, db_url=server.db_url)  # fmt: skip
    assert made.returncode != 0 and "no account" in made.stderr + made.stdout


def test_the_dashboard_of_a_confined_token(server: Server, admin: Admin) -> None:
    from tests.integration.test_dashboard import sign_in

    platform = admin.account(name="Platform")["id"]
    reseller = admin.account(parent=platform, name="Reseller")["id"]
    sibling = admin.account(parent=platform, name="Sibling")["id"]
    low = admin.account(parent=reseller, name="Low customer")["id"]
    rich = admin.account(parent=reseller, name="Rich customer")["id"]
    shared = admin.account(
        parent=reseller,
        name="Shared customer",
        balance="shared",
        spending_limit={"amount": "3", "period": "month"},
    )["id"]
    admin.topup(reseller, "50")
    admin.topup(rich, "40")
    admin.topup(low, "5")
    assert admin.post(low, "charges", amount="4").status_code == 201
    assert admin.post(shared, "charges", amount="2").status_code == 201
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        assert sign_in(browser, token(server, "read", reseller)).status_code == 303
        home = browser.get("/dashboard")
        assert home.status_code == 200
        for inside in (reseller, low, rich, shared):
            assert inside in home.text
        for outside in (platform, sibling):
            assert outside not in home.text
        page = browser.get(f"/dashboard/accounts/{reseller}")
        assert page.status_code == 200 and platform not in page.text
        # The reseller view: its sub-accounts, the lowest spendable first.
        table = page.text[page.text.index('data-testid="children"') :]
        order = [table.index(name) for name in ("Low customer", "Shared customer", "Rich customer")]
        assert order == sorted(order), order
        for path in (
            f"/dashboard/accounts/{sibling}",
            f"/dashboard/accounts/{platform}",
            f"/dashboard/accounts/{platform}/subaccounts",
            f"/dashboard/accounts/{sibling}/statement.csv?from=2026-01-01",
            f"/dashboard/accounts/{sibling}/usage.csv?by=country&by_from=2026-01-01&by_to=2026-12-31",
        ):
            r = browser.get(path)
            assert r.status_code == 404, (path, r.status_code)
        shared_page = browser.get(f"/dashboard/accounts/{shared}")
        assert shared_page.status_code == 200
        assert 'data-testid="shared"' in shared_page.text
        listing = browser.get(f"/dashboard/accounts/{reseller}/subaccounts")
        assert listing.status_code == 200 and "Low customer" in listing.text


def test_migration_15_places_existing_trees(database_url: str) -> None:
    """Accounts made before migration 15 get their subtree columns from their parents, so
    a confined listing finds exactly its subtree."""
    from birdbalance.settings import Settings
    from birdbalance.storage import open_store
    from tests.databases import raw_execute

    store = open_store(Settings(database_url=database_url))
    try:
        store.migrate(target=14)
        ids = {name: f"acc_01JD3Z8Q6W6B7Y2M0N4R5T8V{n}{n}" for n, name in enumerate("PRCSO")}
        tree = {"P": (None, 1), "R": ("P", 2), "C": ("R", 3), "S": ("P", 2), "O": (None, 1)}
        for name, (parent, depth) in tree.items():
            parent_id = "NULL" if parent is None else f"'{ids[parent]}'"
            raw_execute(
                database_url,
                "INSERT INTO accounts (id, name, payment, asset, scale, metadata, created_at,"
                f" parent_id, depth) VALUES ('{ids[name]}', '{name}', 'prepaid', 'EUR', 6,"
                f" '{{}}', '2026-01-01T00:00:00.000000Z', {parent_id}, {depth})",
            )
            for mode in ("live", "test"):
                raw_execute(
                    database_url,
                    "INSERT INTO balances (account_id, mode, balance_minor, seq, held_minor)"
                    f" VALUES ('{ids[name]}', '{mode}', 0, 0, 0)",
                )
        store.migrate()

        def subtree(root: str) -> set[str]:
            return {a.name or "" for a in store.list_accounts(None, 100, None, ids[root]).items}

        assert subtree("P") == {"P", "R", "C", "S"}
        assert subtree("R") == {"R", "C"}
        assert subtree("C") == {"C"}
        assert subtree("O") == {"O"}
        # A new grandchild is placed by the same rule.
        from birdbalance.ledger import Payment
        from birdbalance.records import NewAccount

        store.create_account(NewAccount("N", Payment.PREPAID, "EUR", 6, None, {}, ids["S"]), None)
        assert subtree("S") == {"S", "N"} and "N" in subtree("P") and "N" not in subtree("R")
    finally:
        store.close()


def test_a_confined_token_moves_and_spends_money_but_never_mints_it(
    server: Server, admin: Admin
) -> None:
    """Inside its subtree a confined token transfers and charges; money enters only from
    outside (an unconfined admin's top-up, refund or adjustment, or a transfer in), and a
    shared sub-account's limit is set from above it."""
    reseller = admin.account()["id"]
    customer = admin.account(parent=reseller)["id"]
    shared = admin.account(
        parent=reseller, balance="shared", spending_limit={"amount": "5", "period": "day"}
    )["id"]
    admin.topup(reseller, "50")
    charge = admin.post(reseller, "charges", amount="10").json()["entry"]["id"]
    as_reseller = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token(server, 'write', reseller)}"},
        timeout=30,
    )
    as_shared = httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token(server, 'write', shared)}"},
        timeout=30,
    )
    n = iter(range(100))

    def post(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
        return client.post(path, json=body, headers={"Idempotency-Key": f"mint-{next(n)}"})

    for kind, body in (
        ("topups", {"amount": "1"}),
        ("adjustments", {"amount": "1"}),
        ("refunds", {"amount": "1", "charge": charge}),
    ):
        r = post(as_reseller, f"/v1/accounts/{reseller}/{kind}", body)
        assert r.status_code == 403 and r.json()["errors"][0]["code"] == 2, (kind, r.text)
    ops = [{"type": "topup", "account": customer, "amount": "1", "idempotency_key": "m1"}]
    assert post(as_reseller, "/v1/bulk", {"operations": ops}).status_code == 403
    # Moving and spending inside the subtree is what it is for.
    moved = post(as_reseller, "/v1/transfers", {"from": reseller, "to": customer, "amount": "5"})
    assert moved.status_code == 201, moved.text
    assert post(as_reseller, f"/v1/accounts/{customer}/charges", {"amount": "1"}).status_code == 201
    # The shared sub-account's limit is its parent's to set, not its own.
    limit = {"amount": "500", "period": "day"}
    r = as_shared.put(f"/v1/accounts/{shared}/spending-limit", json=limit)
    assert r.status_code == 403, r.text
    assert as_shared.delete(f"/v1/accounts/{shared}/spending-limit").status_code == 403
    assert as_reseller.put(f"/v1/accounts/{shared}/spending-limit", json=limit).status_code == 200
    assert post(as_shared, f"/v1/accounts/{shared}/charges", {"amount": "6"}).status_code == 201
    for client in (as_reseller, as_shared):
        client.close()
