"""Holds over HTTP, as a messaging platform bills: reserve on submit, capture on the
delivery report, void on failure, expire when no report comes. On both engines."""

from __future__ import annotations

import time

import httpx

from tests.servers import Admin, Server


def _balance(server: Server, key: str) -> float:
    r = httpx.get(server.url + "/balance", headers={"Authorization": f"AccessKey {key}"})
    assert r.status_code == 200, r.text
    return float(r.json()["amount"])


def _hold(admin: Admin, aid: str, idem: str | None = None, **body: object) -> httpx.Response:
    return admin.post(aid, "holds", idem, **body)


def _act(admin: Admin, hold_id: str, action: str, idem: str, **body: object) -> httpx.Response:
    return admin.http.post(
        f"/v1/holds/{hold_id}/{action}", json=body, headers={"Idempotency-Key": idem}
    )


def test_reserve_capture_and_void(server: Server, admin: Admin) -> None:
    aid = admin.account("prepaid", "credits")["id"]
    admin.topup(aid, "10")
    key = admin.key(aid)["key"]
    r = _hold(admin, aid, amount="4", reference="msg-1", metadata={"to": "+31600000000"})
    assert r.status_code == 201, r.text
    hold = r.json()["hold"]
    assert (hold["status"], hold["amount"], hold["captured"]) == ("pending", "4", "0")
    assert hold["expires_at"] > hold["created_at"] and hold["resolved_at"] is None
    # /balance keeps MessageBird's contract: its amount is what is available.
    assert _balance(server, key) == 6
    ledger = admin.http.get(f"/v1/accounts/{aid}").json()["balances"]["live"]
    assert ledger == {"amount": "10", "pending": "4", "available": "6", "entries": 1}
    # No overdraft through holds or past them.
    refused = _hold(admin, aid, amount="6.000001")
    assert refused.status_code == 422 and refused.json()["errors"][0]["code"] == 25
    refused = admin.post(aid, "charges", amount="7")
    assert refused.status_code == 422 and refused.json()["errors"][0]["code"] == 25
    # The delivery report arrives: capture part of it.
    r = _act(admin, hold["id"], "capture", "cap-" + hold["id"], amount="2.5")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hold"]["status"] == "captured" and body["hold"]["captured"] == "2.5"
    assert body["entry"]["kind"] == "charge" and body["entry"]["amount"] == "-2.5"
    assert body["entry"]["hold"] == hold["id"] and body["entry"]["reference"] == "msg-1"
    assert body["balance"]["amount"] == "7.5"
    assert _balance(server, key) == 7.5
    # The same capture again answers the same; another one conflicts with the state.
    again = _act(admin, hold["id"], "capture", "cap-" + hold["id"], amount="2.5")
    assert again.status_code == 200 and again.json() == body
    other = _act(admin, hold["id"], "capture", "cap2-" + hold["id"])
    assert other.status_code == 409 and other.json()["errors"][0]["parameter"] == "hold"
    # A failed message: void.
    second = _hold(admin, aid, amount="5").json()["hold"]
    assert _balance(server, key) == 2.5
    voided = _act(admin, second["id"], "void", "void-" + second["id"])
    assert voided.status_code == 200 and voided.json()["hold"]["status"] == "voided"
    assert "entry" not in voided.json()
    assert _balance(server, key) == 7.5
    late = _act(admin, second["id"], "capture", "cap-" + second["id"])
    assert late.status_code == 409
    # Listed, filtered and shown.
    listed = admin.http.get(f"/v1/accounts/{aid}/holds", params={"status": "voided"}).json()
    assert [h["id"] for h in listed["data"]] == [second["id"]]
    everything = admin.http.get(f"/v1/accounts/{aid}/holds", params={"limit": "1"}).json()
    assert everything["has_more"] and everything["data"][0]["id"] == second["id"]
    shown = admin.http.get(f"/v1/holds/{hold['id']}").json()
    assert shown["status"] == "captured" and shown["metadata"] == {"to": "+31600000000"}


def test_holds_are_idempotent_and_validated(admin: Admin) -> None:
    aid = admin.account()["id"]
    admin.topup(aid, "3")
    first = _hold(admin, aid, "hold-" + aid, amount="1", expires_in=60)
    again = _hold(admin, aid, "hold-" + aid, amount="1", expires_in=60)
    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    changed = _hold(admin, aid, "hold-" + aid, amount="2", expires_in=60)
    assert changed.status_code == 409
    assert _hold(admin, aid).status_code == 422  # amount is required
    for bad in ({"amount": "0"}, {"amount": "-1"}, {"amount": "1", "expires_in": 0}):
        r = _hold(admin, aid, **bad)
        assert r.status_code == 422 and r.json()["errors"][0]["code"] == 10, r.text
    r = _hold(admin, aid, amount="1", expires_in=31 * 86400)
    assert r.json()["errors"][0]["parameter"] == "expires_in"
    r = admin.http.post(f"/v1/accounts/{aid}/holds", json={"amount": "1"})
    assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == "Idempotency-Key"
    hold_id = first.json()["hold"]["id"]
    r = _act(admin, hold_id, "capture", "too-much-" + hold_id, amount="1.5")
    assert r.status_code == 422 and "cannot exceed" in r.json()["errors"][0]["description"]
    unknown = _act(admin, "hld_00000000000000000000000000", "void", "x-" + aid)
    assert unknown.status_code == 404
    ledger = admin.http.get(f"/v1/accounts/{aid}").json()["balances"]["live"]
    assert ledger == {"amount": "3", "pending": "1", "available": "2", "entries": 1}


def test_a_hold_expires_by_itself(server: Server, admin: Admin) -> None:
    aid = admin.account()["id"]
    admin.topup(aid, "5")
    key = admin.key(aid)["key"]
    hold = _hold(admin, aid, amount="5", expires_in=1).json()["hold"]
    assert _balance(server, key) == 0
    # No write touches the ledger: the server's sweeper expires the hold.
    deadline = time.monotonic() + 10
    while _balance(server, key) != 5:
        assert time.monotonic() < deadline, "the hold did not expire"
        time.sleep(0.1)
    shown = admin.http.get(f"/v1/holds/{hold['id']}").json()
    assert shown["status"] == "expired" and shown["resolved_at"] >= shown["expires_at"]
    late = _act(admin, hold["id"], "capture", "late-" + hold["id"])
    assert late.status_code == 409 and "expired" in late.json()["errors"][0]["description"]
