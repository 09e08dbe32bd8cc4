"""The audit log: every admin action (API, CLI, dashboard sign-in) with who, what, when
and from where, readable through the API and the CLI, and append-only in the database."""

from __future__ import annotations

import calendar
import getpass
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.databases import REFUSED, raw_execute
from tests.servers import Admin, Server, cli


def _audit(admin: Admin, **params: str) -> list[dict[str, Any]]:
    r = admin.http.get("/v1/audit", params=params)
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


def _eventually(admin: Admin, count: int, **params: str) -> list[dict[str, Any]]:
    """Ledger entries' records are written in the next audit batch, not before the answer."""
    deadline = time.monotonic() + 10
    while True:
        records = _audit(admin, **params)
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def test_admin_actions_are_recorded_with_who_what_and_where(
    database_url: str, tmp_path: Path
) -> None:
    server = Server(
        db_url=database_url,
        log_path=tmp_path / "server.log",
        env={"BIRDBALANCE_TRUSTED_PROXIES": "127.0.0.1"},
    ).start()
    try:
        admin = Admin(server.url)
        account = admin.account(name="Audited")["id"]
        key = admin.key(account)
        admin.topup(account, "3")
        refused = admin.post(account, "charges", amount="99")
        assert refused.status_code == 422
        assert admin.http.delete(f"/v1/keys/{key['id']}").status_code == 200
        assert admin.http.get(f"/v1/accounts/{account}").status_code == 200  # reads: no record
        forwarded = admin.http.post(
            "/v1/accounts",
            json={"payment": "prepaid", "type": "credits"},
            headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.1"},
        )
        assert forwarded.status_code == 201
        records = _eventually(admin, 6)
        actions = [(r["action"], r["status"]) for r in records]
        assert actions[:2] == [("POST /v1/accounts", 201), ("DELETE /v1/keys/{key_id}", 200)]
        assert ("POST /v1/accounts/{account_id}/keys", 201) in actions
        assert ("POST /v1/accounts/{account_id}/topups", 201) in actions
        assert ("POST /v1/accounts/{account_id}/charges", 422) in actions
        assert not any(a.startswith("GET") for a, _ in actions)
        assert {r["actor"] for r in records} == {"admin-token"}
        assert records[0]["address"] == "203.0.113.9"  # from the trusted proxy's header
        assert records[1]["address"] == "127.0.0.1"
        assert records[1]["target"] == f"/v1/keys/{key['id']}"
        charge = next(r for r in records if r["action"].endswith("/charges"))
        assert charge["detail"]["outcome"] == "refused" and charge["detail"]["idempotency_key"]
        assert all(r["at"].endswith("Z") for r in records)
        # Filters and paging.
        assert [r["action"] for r in _audit(admin, action="DELETE /v1/keys/{key_id}")] == [
            "DELETE /v1/keys/{key_id}"
        ]
        page = admin.http.get("/v1/audit", params={"limit": "2"}).json()
        assert len(page["data"]) == 2 and page["has_more"]
        rest = admin.http.get("/v1/audit", params={"cursor": page["next_cursor"]}).json()
        assert [r["seq"] for r in rest["data"]] == [r["seq"] for r in records[2:]]
        assert admin.http.get("/v1/audit", params={"cursor": "x"}).status_code == 422
        # The CLI's writes are recorded too, and the CLI reads the log.
        made = cli(
            "accounts", "create", "--payment", "prepaid", "--type", "euros", db_url=database_url
        )
        assert made.returncode == 0, made.stderr
        failed = cli("keys", "revoke", "key_01KAAAAAAAAAAAAAAAAAAAAAAA", db_url=database_url)
        assert failed.returncode == 1
        shown = cli("audit", "--json", "--limit", "2", db_url=database_url)
        cli_records = json.loads(shown.stdout)["data"]
        assert [(r["action"], r["status"]) for r in cli_records] == [
            ("birdbalance keys revoke", 404),
            ("birdbalance accounts create", 200),
        ]
        assert cli_records[0]["actor"] == f"cli:{getpass.getuser()}"
        assert cli_records[0]["target"] == "key_01KAAAAAAAAAAAAAAAAAAAAAAA"
        assert cli_records[0]["address"].startswith("local:")
        table = cli("audit", "--actor", "admin-token", db_url=database_url)
        assert "DELETE /v1/keys/{key_id}" in table.stdout and "cli:" not in table.stdout
        admin.http.close()
    finally:
        server.stop()
    # Append-only: the database itself refuses to change or remove a record.
    for sql in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(REFUSED):
            raw_execute(database_url, sql)


def test_a_read_only_token_trying_to_write_is_recorded(database_url: str, tmp_path: Path) -> None:
    token = json.loads(
        cli(
            "tokens",
            "create",
            "--name",
            "grafana",
            "--scope",
            "read",
            "--json",
            db_url=database_url,
        ).stdout
    )
    server = Server(db_url=database_url, log_path=tmp_path / "server.log").start()
    try:
        headers = {"Authorization": f"Bearer {token['token']}"}
        r = httpx.post(
            server.url + "/v1/accounts",
            json={"payment": "prepaid", "type": "euros"},
            headers=headers,
        )
        assert r.status_code == 403
        admin = Admin(server.url)
        records = _audit(admin, actor=token["id"])
        assert [(r["action"], r["status"]) for r in records] == [("POST /v1/accounts", 403)]
        assert records[0]["detail"]["token_name"] == "grafana"
        admin.http.close()
    finally:
        server.stop()


def test_an_entrys_audit_row_commits_in_the_entrys_transaction(
    database_url: str, tmp_path: Path
) -> None:
    """Posted, replayed and refused-in-the-ledger entries have their row when the answer
    arrives: no audit batch of its own, no linger (it used to follow up to 50 ms later)."""
    server = Server(db_url=database_url, log_path=tmp_path / "server.log").start()
    try:
        admin = Admin(server.url)
        account = admin.account()["id"]
        seen = len(_eventually(admin, 1))
        answers = [
            admin.post(account, "topups", idem="audited-1", amount="5"),
            admin.post(account, "topups", idem="audited-1", amount="5"),  # replayed
            admin.post(account, "charges", idem="audited-2", amount="9"),  # overdraft
        ]
        assert [r.status_code for r in answers] == [201, 201, 422]
        everything = _audit(admin)  # read at once: no waiting
        records = everything[: len(everything) - seen]
        assert [(r["status"], r["detail"]["outcome"], r["detail"]["idempotency_key"])
                for r in reversed(records)] == [
            (201, "posted", "audited-1"),
            (201, "replayed", "audited-1"),
            (422, "refused", "audited-2"),
        ]  # fmt: skip
        assert all(r["action"].startswith("POST /v1/accounts/{account_id}/") for r in records)
        admin.http.close()
    finally:
        server.stop()


def _refuse_audit_rows(database_url: str) -> None:
    """Make every audit insert fail, as a locked or briefly broken database would."""
    if database_url.startswith("sqlite:"):
        raw_execute(
            database_url,
            "CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log"
            " BEGIN SELECT RAISE(ABORT, 'audit_log is refusing rows for this test'); END",
        )
        return
    raw_execute(
        database_url,
        "CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN RAISE EXCEPTION 'audit_log is refusing rows for this test'; END $$;"
        " CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_log"
        " FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()",
    )


def _accept_audit_rows(database_url: str) -> None:
    if database_url.startswith("sqlite:"):
        raw_execute(database_url, "DROP TRIGGER test_refuse_audit")
        return
    raw_execute(
        database_url,
        "DROP TRIGGER test_refuse_audit ON audit_log; DROP FUNCTION test_refuse_audit()",
    )


def test_audit_rows_of_acknowledged_writes_survive_a_database_that_refuses_them(
    database_url: str, tmp_path: Path
) -> None:
    """Entries are acknowledged while the audit log cannot be written; their rows are
    retried and all land once it can, each stamped with when the write happened."""
    log = tmp_path / "server.log"
    server = Server(db_url=database_url, log_path=log).start()
    try:
        admin = Admin(server.url)
        account = admin.account()["id"]
        admin.topup(account, "100")
        before = len(_eventually(admin, 2))
        _refuse_audit_rows(database_url)
        started = time.time()
        try:
            for n in range(20):
                r = admin.post(account, "charges", idem=f"refused-audit-{n}", amount="1")
                assert r.status_code == 201, r.text
            time.sleep(1.5)  # several failed tries of the batch
            assert len(_audit(admin)) == before
        finally:
            _accept_audit_rows(database_url)
        records = _eventually(admin, before + 20)
        charged = [r for r in records if r["action"].endswith("/charges")]
        assert len(charged) == 20
        assert sorted(r["detail"]["idempotency_key"] for r in charged) == sorted(
            f"refused-audit-{n}" for n in range(20)
        )
        # Stamped when the charge was made, not when the row finally landed.
        latest_s = max(
            calendar.timegm(time.strptime(r["at"][:19], "%Y-%m-%dT%H:%M:%S")) for r in charged
        )
        assert latest_s <= started + 1.5
        assert "audit records failed" in log.read_text()
        admin.http.close()
    finally:
        server.stop()
