"""Keys and secrets: keys stored as HMAC-SHA256 under the key secret, rotation with two
keys live, revocation on every node at once, scoped admin tokens, on both engines."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from birdbalance.keys import hash_key
from birdbalance.settings import Settings
from birdbalance.storage import open_store
from tests.databases import MIGRATIONS
from tests.servers import ADMIN_TOKEN, Admin, Server, clean_env, cli

SECRET = "k" * 40
OTHER_SECRET = "o" * 40


def _rows(database_url: str, sql: str) -> list[tuple[object, ...]]:
    if database_url.startswith("sqlite:"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    with psycopg.connect(database_url) as pg:
        return pg.execute(sql.encode()).fetchall()


def _balance(url: str, key: str) -> int:
    return httpx.get(url + "/balance", headers={"Authorization": f"AccessKey {key}"}).status_code


@pytest.fixture
def node(database_url: str, tmp_path: Path) -> Iterator[Server]:
    server = Server(
        db_url=database_url,
        log_path=tmp_path / "a.log",
        env={"BIRDBALANCE_KEY_SECRET": SECRET},
    ).start()
    yield server
    server.stop()


@pytest.fixture
def other_node(node: Server, tmp_path: Path) -> Iterator[Server]:
    """A second process on the same database (another node)."""
    server = Server(
        db_url=node.db_url, log_path=tmp_path / "b.log", env={"BIRDBALANCE_KEY_SECRET": SECRET}
    ).start()
    yield server
    server.stop()


def test_keys_are_stored_as_hmac_under_the_secret(node: Server) -> None:
    admin = Admin(node.url)
    account = admin.account()["id"]
    key = admin.key(account)["key"]
    stored = [bytes(r[0]) for r in _rows(node.db_url, "SELECT key_hash FROM api_keys")]
    assert stored == [hash_key(key, SECRET.encode())]
    assert hashlib.sha256(key.encode()).digest() not in stored  # not a plain digest
    dump = b"".join(bytes(str(r), "utf-8") for r in _rows(node.db_url, "SELECT * FROM api_keys"))
    assert key.encode() not in dump
    assert _balance(node.url, key) == 200
    check = _rows(node.db_url, "SELECT value FROM server_meta")[0][0]
    assert (
        check == hmac.new(SECRET.encode(), b"birdbalance key secret check v1", "sha256").hexdigest()
    )
    admin.http.close()


def test_a_node_with_another_secret_refuses_to_start(node: Server, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "birdbalance", "serve", "--port", "1", "--no-demo"],
        env=clean_env(BIRDBALANCE_DATABASE_URL=node.db_url, BIRDBALANCE_KEY_SECRET=OTHER_SECRET),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "BIRDBALANCE_KEY_SECRET differs" in result.stderr + result.stdout
    assert OTHER_SECRET not in result.stderr + result.stdout
    listed = cli(
        "accounts", "list", db_url=node.db_url, env={"BIRDBALANCE_KEY_SECRET": OTHER_SECRET}
    )
    assert listed.returncode != 0 and "BIRDBALANCE_KEY_SECRET differs" in listed.stderr


def test_schema_v7_moves_plain_sha256_digests_under_the_secret(database_url: str) -> None:
    """A database from before the key secret keeps working keys after `migrate`."""
    settings = Settings(database_url=database_url, key_secret=SECRET)
    store = open_store(settings)
    store.migrate(target=6)
    key = "A" * 25
    now = "2026-11-01T00:00:00.000000Z"
    with store._write() as conn:  # type: ignore[attr-defined]
        for sql, args in (
            (
                "INSERT INTO accounts (id, name, payment, asset, scale, credit_limit_minor,"
                " metadata, created_at) VALUES (?, NULL, 'prepaid', 'EUR', 6, NULL, '{}', ?)",
                ("acc_01KAAAAAAAAAAAAAAAAAAAAAAA", now),
            ),
            (
                "INSERT INTO balances (account_id, mode, balance_minor, seq, held_minor)"
                " VALUES (?, 'live', 0, 0, 0)",
                ("acc_01KAAAAAAAAAAAAAAAAAAAAAAA",),
            ),
            (
                "INSERT INTO balances (account_id, mode, balance_minor, seq, held_minor)"
                " VALUES (?, 'test', 0, 0, 0)",
                ("acc_01KAAAAAAAAAAAAAAAAAAAAAAA",),
            ),
            (
                "INSERT INTO api_keys (id, account_id, mode, key_hash, hint, created_at)"
                " VALUES (?, ?, 'live', ?, '…AAAA', ?)",
                (
                    "key_01KAAAAAAAAAAAAAAAAAAAAAAA",
                    "acc_01KAAAAAAAAAAAAAAAAAAAAAAA",
                    hashlib.sha256(key.encode()).digest(),
                    now,
                ),
            ),
        ):
            store._execute(conn, sql, args)  # type: ignore[attr-defined]
    assert store.migrate() == MIGRATIONS[6:]
    store.check_key_secret()
    assert store.lookup_balance(store.hasher.digest(key)) is not None
    assert store.lookup_balance(hashlib.sha256(key.encode()).digest()) is None
    store.close()


def test_rotation_keeps_two_keys_live_until_the_old_one_expires(
    node: Server, other_node: Server
) -> None:
    admin = Admin(node.url)
    account = admin.account()["id"]
    admin.topup(account, "5")
    old = admin.key(account)
    r = admin.http.post(f"/v1/keys/{old['id']}/rotate", json={"expires_in": 2})
    assert r.status_code == 201, r.text
    rotated = r.json()
    new_key = rotated["key"]["key"]
    assert rotated["previous"]["id"] == old["id"] and rotated["previous"]["status"] == "expiring"
    assert rotated["key"]["mode"] == "live" and "key" not in rotated["previous"]
    # Both work, on both nodes, until the old one's end; then only the new one.
    for url in (node.url, other_node.url):
        assert _balance(url, old["key"]) == 200 and _balance(url, new_key) == 200
    deadline = time.monotonic() + 10
    while _balance(node.url, old["key"]) == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    for url in (node.url, other_node.url):
        assert _balance(url, old["key"]) == 401 and _balance(url, new_key) == 200
    listed = {
        k["id"]: k["status"] for k in admin.http.get(f"/v1/accounts/{account}/keys").json()["data"]
    }
    assert listed == {old["id"]: "expired", rotated["key"]["id"]: "live"}
    # An expired key cannot be rotated again; expires_in 0 ends the old key at once.
    assert admin.http.post(f"/v1/keys/{old['id']}/rotate", json={}).status_code == 409
    now = admin.http.post(f"/v1/keys/{rotated['key']['id']}/rotate", json={"expires_in": 0})
    assert now.status_code == 201
    assert _balance(node.url, new_key) == 401
    assert _balance(node.url, now.json()["key"]["key"]) == 200
    bad = admin.http.post(f"/v1/keys/{old['id']}/rotate", json={"expires_in": -1})
    assert bad.status_code == 422 and bad.json()["errors"][0]["parameter"] == "expires_in"
    admin.http.close()


def test_a_ledger_has_at_most_ten_live_keys(node: Server) -> None:
    admin = Admin(node.url)
    account = admin.account()["id"]
    keys = [admin.key(account)["id"] for _ in range(10)]
    r = admin.http.post(f"/v1/accounts/{account}/keys", json={})
    assert r.status_code == 409, r.text
    assert admin.http.post(f"/v1/accounts/{account}/keys", json={"mode": "test"}).status_code == 201
    assert admin.http.post(f"/v1/keys/{keys[0]}/rotate", json={}).status_code == 409
    assert admin.http.delete(f"/v1/keys/{keys[0]}").status_code == 200
    assert admin.http.post(f"/v1/accounts/{account}/keys", json={}).status_code == 201
    admin.http.close()


def test_revocation_holds_at_once_on_every_node(node: Server, other_node: Server) -> None:
    admin = Admin(node.url)
    account = admin.account()["id"]
    key = admin.key(account)
    for _ in range(20):  # warm every cache there is
        assert _balance(other_node.url, key["key"]) == 200
    assert admin.http.delete(f"/v1/keys/{key['id']}").status_code == 200
    assert _balance(other_node.url, key["key"]) == 401
    assert _balance(node.url, key["key"]) == 401
    admin.http.close()


def _token(db_url: str, scope: str, name: str) -> dict[str, str]:
    result = cli(
        "tokens",
        "create",
        "--name",
        name,
        "--scope",
        scope,
        "--json",
        db_url=db_url,
        env={"BIRDBALANCE_KEY_SECRET": SECRET},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_scoped_admin_tokens(node: Server, other_node: Server) -> None:
    reader = _token(node.db_url, "read", "dashboards")
    writer = _token(node.db_url, "write", "billing")
    assert reader["token"].startswith("bbt_") and reader["scope"] == "read"
    stored = [bytes(r[0]) for r in _rows(node.db_url, "SELECT token_hash FROM admin_tokens")]
    assert hash_key(reader["token"], SECRET.encode()) in stored
    as_reader = httpx.Client(
        base_url=node.url, headers={"Authorization": f"Bearer {reader['token']}"}
    )
    as_writer = httpx.Client(
        base_url=other_node.url, headers={"Authorization": f"Bearer {writer['token']}"}
    )
    made = as_writer.post("/v1/accounts", json={"payment": "prepaid", "type": "euros"})
    assert made.status_code == 201
    account = made.json()["id"]
    assert as_reader.get(f"/v1/accounts/{account}").status_code == 200
    assert as_reader.get("/v1/accounts").status_code == 200
    assert as_reader.get("/metrics").status_code == 200
    for refused in (
        as_reader.post("/v1/accounts", json={"payment": "prepaid", "type": "euros"}),
        as_reader.post(
            f"/v1/accounts/{account}/topups",
            json={"amount": "1"},
            headers={"Idempotency-Key": "r1"},
        ),
        as_reader.post(f"/v1/accounts/{account}/keys", json={}),
    ):
        assert refused.status_code == 403, refused.text
        assert refused.json()["errors"][0]["code"] == 2
    topup = as_writer.post(
        f"/v1/accounts/{account}/topups", json={"amount": "1"}, headers={"Idempotency-Key": "w1"}
    )
    assert topup.status_code == 201
    # Unknown and malformed tokens: 401; revoking holds at once on every node.
    for bad in ("bbt_" + "x" * 32, "bbt_short", "x" * 300):
        r = httpx.get(node.url + "/v1/accounts", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401
    revoked = cli(
        "tokens",
        "revoke",
        writer["id"],
        "--json",
        db_url=node.db_url,
        env={"BIRDBALANCE_KEY_SECRET": SECRET},
    )
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"]
    assert as_writer.get("/v1/accounts").status_code == 401
    assert (
        httpx.get(
            node.url + "/v1/accounts", headers={"Authorization": f"Bearer {writer['token']}"}
        ).status_code
        == 401
    )
    listed = cli(
        "tokens", "list", "--json", db_url=node.db_url, env={"BIRDBALANCE_KEY_SECRET": SECRET}
    )
    assert {t["name"] for t in json.loads(listed.stdout)["data"]} == {"dashboards", "billing"}
    assert reader["token"] not in listed.stdout
    # The configured token still reads and writes.
    env_admin = Admin(node.url)
    assert env_admin.http.post(f"/v1/accounts/{account}/keys", json={}).status_code == 201
    for client in (as_reader, as_writer, env_admin.http):
        client.close()
    assert ADMIN_TOKEN not in (node.log_path.read_text() + other_node.log_path.read_text())


def test_a_stored_token_signs_in_to_the_dashboard_until_revoked(node: Server) -> None:
    from tests.integration.test_dashboard import sign_in

    token = _token(node.db_url, "read", "finance")
    with httpx.Client(base_url=node.url, timeout=10) as browser:
        signed = sign_in(browser, token["token"])
        assert signed.status_code == 303, signed.text
        home = browser.get("/dashboard")
        assert home.status_code == 200 and token["token"] not in home.text
        revoked = cli(
            "tokens",
            "revoke",
            token["id"],
            db_url=node.db_url,
            env={"BIRDBALANCE_KEY_SECRET": SECRET},
        )
        assert revoked.returncode == 0
        after = browser.get("/dashboard")
        assert after.status_code in (303, 307) or "sign-in" in str(after.url)
    admin = Admin(node.url)
    records = admin.http.get("/v1/audit", params={"actor": token["id"]}).json()["data"]
    assert [r["action"] for r in records] == ["POST /dashboard/sign-in"]
    admin.http.close()
