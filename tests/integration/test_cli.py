"""The birdbalance CLI as a user runs it: separate processes on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.databases import LATEST, MIGRATIONS, raw_execute, sqlite_url
from tests.servers import Server, cli, cli_process


@pytest.fixture
def db_url(database_url: str) -> str:
    """A new database of each engine."""
    return database_url


def _json(result) -> dict:  # type: ignore[no-untyped-def,type-arg]
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _new_account(type_: str, db_url: str, *extra: str) -> dict:  # type: ignore[type-arg]
    return _json(
        cli(
            "accounts",
            "create",
            "--payment",
            "prepaid",
            "--type",
            type_,
            *extra,
            "--json",
            db_url=db_url,
        )
    )


def test_a_full_session(db_url: str) -> None:
    account = _new_account("euros", db_url, "--name", "Shop")
    aid = account["id"]
    key = _json(cli("keys", "create", aid, "--test", "--json", db_url=db_url))
    assert key["key"].startswith("test_") and key["id"].startswith("key_")
    top = _json(cli("topup", aid, "10", "--reference", "inv-1", "--json", db_url=db_url))
    assert top["balance"]["amount"] == "10"
    charge = _json(cli("charge", aid, "2.5", "--idempotency-key", "c-1", "--json", db_url=db_url))
    again = _json(cli("charge", aid, "2.5", "--idempotency-key", "c-1", "--json", db_url=db_url))
    assert again == charge and charge["balance"]["amount"] == "7.5"
    refund = _json(
        cli("refund", aid, "1", "--charge", charge["entry"]["id"], "--json", db_url=db_url)
    )
    assert refund["balance"]["amount"] == "8.5"
    sandbox = _json(cli("topup", aid, "1", "--test", "--json", db_url=db_url))
    assert sandbox["balance"] == {
        "mode": "test",
        "payment": "prepaid",
        "type": "euros",
        "amount": "1",
    }

    table = cli("history", aid, db_url=db_url)
    assert table.returncode == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "SEQ", "KIND", "AMOUNT"]
    assert [line.split()[2] for line in lines[1:]] == ["refund", "charge", "topup"]
    charges = _json(cli("history", aid, "--kind", "charge", "--json", db_url=db_url))
    assert [e["kind"] for e in charges["data"]] == ["charge"]
    by_ref = _json(cli("history", aid, "--reference", "inv-1", "--json", db_url=db_url))
    assert [e["kind"] for e in by_ref["data"]] == ["topup"]
    later = cli("history", aid, "--from", "2999-01-01T00:00:00Z", "--json", db_url=db_url)
    assert _json(later)["data"] == []
    bad = cli("history", aid, "--to", "tomorrow", db_url=db_url)
    assert bad.returncode != 0 and "to must be an RFC 3339 time" in bad.stderr

    shown = _json(cli("accounts", "show", aid, "--json", db_url=db_url))
    assert shown["balances"]["live"]["amount"] == "8.5"
    listed = cli("accounts", "list", db_url=db_url)
    assert aid in listed.stdout and "Shop" in listed.stdout
    keys = cli("keys", "list", aid, db_url=db_url)
    assert key["id"] in keys.stdout and key["key"] not in keys.stdout
    revoked = _json(cli("keys", "revoke", key["id"], "--json", db_url=db_url))
    assert revoked["revoked_at"]

    verified = cli("verify", db_url=db_url)
    assert verified.returncode == 0 and "ok: 2 ledgers verified" in verified.stdout


def test_re_running_a_write_with_a_reference_replays_it(db_url: str) -> None:
    aid = _new_account("euros", db_url)["id"]
    first = cli("topup", aid, "25", "--reference", "inv-17", db_url=db_url)
    again = cli("topup", aid, "25", "--reference", "inv-17", db_url=db_url)
    assert first.returncode == again.returncode == 0, again.stderr
    assert first.stdout == again.stdout and "already posted" in again.stderr
    assert "already posted" not in first.stderr
    other = cli("topup", aid, "30", "--reference", "inv-17", db_url=db_url)
    assert other.returncode == 1 and "already posted to this ledger with another" in other.stderr
    # The same reference on a charge, or in the sandbox, is another write.
    assert cli("charge", aid, "1", "--reference", "inv-17", db_url=db_url).returncode == 0
    assert cli("topup", aid, "25", "--reference", "inv-17", "--test", db_url=db_url).returncode == 0
    plain = cli("topup", aid, "1", db_url=db_url)
    assert plain.returncode == 0 and "running this command again posts again" in plain.stderr
    shown = _json(cli("accounts", "show", aid, "--json", db_url=db_url))
    assert shown["balances"]["live"]["amount"] == "25"  # 25 once, -1, +1


def test_page_sizes_are_numbers_checked_before_anything_runs(db_url: str) -> None:
    for command in (["accounts", "list"], ["audit"], ["events", "list"], ["history", "acc_1"]):
        for bad in ("abc", "0", "100000"):
            result = cli(*command, "--limit", bad, db_url=db_url)
            assert result.returncode == 2 and "--limit" in result.stderr, (command, bad)


def test_errors_go_to_stderr_with_a_nonzero_exit(db_url: str) -> None:
    aid = _new_account("credits", db_url)["id"]
    result = cli("charge", aid, "1", db_url=db_url)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: Not enough balance") and "code 25" in result.stderr
    result = cli("topup", aid, "1.0000001", db_url=db_url)
    assert result.returncode == 1 and "parameter amount" in result.stderr
    result = cli("accounts", "create", "--payment", "prepaid", "--type", "gold", db_url=db_url)
    assert result.returncode == 1 and "unknown balance type" in result.stderr
    result = cli("accounts", "show", "acc_00000000000000000000000000", db_url=db_url)
    assert result.returncode == 1 and "code 20" in result.stderr
    result = cli("verify", db_url="mysql://nope")
    assert result.returncode == 2 and result.stderr.startswith("error: unsupported database")


def test_verify_catches_tampering(db_url: str) -> None:
    aid = _json(
        cli(
            "accounts", "create", "--payment", "prepaid", "--type", "euros", "--json", db_url=db_url
        )
    )["id"]
    _json(cli("topup", aid, "5", "--json", db_url=db_url))
    raw_execute(db_url, "UPDATE balances SET balance_minor = balance_minor + 1 WHERE mode = 'live'")
    result = cli("verify", db_url=db_url)
    assert result.returncode == 1 and "MISMATCH" in result.stderr
    report = json.loads(cli("verify", "--json", db_url=db_url).stdout)
    assert report["ok"] is False and report["problems"]


def test_migrate_and_out_of_date_schema(db_url: str) -> None:
    first = cli("migrate", db_url=db_url)
    assert first.returncode == 0, first.stderr
    assert f"applied {', '.join(MIGRATIONS)}; schema version {LATEST}" in first.stdout
    assert f"up to date (version {LATEST})" in cli("migrate", db_url=db_url).stdout
    raw_execute(db_url, "INSERT INTO schema_migrations VALUES (99, 'future', '2030-01-01')")
    result = cli("accounts", "list", db_url=db_url)
    assert result.returncode == 1 and "newer than this birdbalance" in result.stderr


def test_a_no_op_migrate_takes_no_write_lock(db_url: str) -> None:
    """On a schema already up to date, ``migrate`` only reads: it answers at once while
    another process holds the write lock (SQLite) or the migration lock (PostgreSQL),
    where it used to wait for it (and on SQLite, make writes wait for its checks)."""
    assert cli("migrate", db_url=db_url).returncode == 0
    if db_url.startswith("sqlite:"):
        holder: Any = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        holder = psycopg.connect(db_url)
        holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", (0x62697264, 1))
    try:
        started = time.monotonic()
        result = cli("migrate", db_url=db_url)
        elapsed_s = time.monotonic() - started
    finally:
        holder.rollback() if not db_url.startswith("sqlite:") else holder.execute("ROLLBACK")
        holder.close()
    assert result.returncode == 0, result.stderr
    assert f"up to date (version {LATEST})" in result.stdout
    assert elapsed_s < 3, elapsed_s  # SQLite's busy timeout is 5 s; PostgreSQL would hang


def test_serve_refuses_an_out_of_date_schema_and_names_the_fix(db_url: str, tmp_path: Path) -> None:
    from birdbalance.settings import Settings
    from birdbalance.storage import open_store

    store = open_store(Settings(database_url=db_url))
    store.migrate(target=1)
    store.close()
    srv = Server(db_url=db_url, log_path=tmp_path / "serve.log")
    with pytest.raises(RuntimeError, match="run `birdbalance migrate`"):
        srv.start()
    assert f"applied {', '.join(MIGRATIONS[1:])};" in cli("migrate", db_url=db_url).stdout
    srv.start().stop()


def test_holds_and_point_in_time(db_url: str) -> None:
    aid = _new_account("credits", db_url)["id"]
    top = _json(cli("topup", aid, "10", "--json", db_url=db_url))
    hold = _json(cli("holds", "create", aid, "4", "--reference", "msg-1", "--json", db_url=db_url))
    assert hold["hold"]["status"] == "pending" and hold["hold"]["reference"] == "msg-1"
    shown = _json(cli("accounts", "show", aid, "--json", db_url=db_url))
    assert shown["balances"]["live"]["pending"] == "4"
    assert shown["balances"]["live"]["available"] == "6"
    result = cli("charge", aid, "7", db_url=db_url)
    assert result.returncode == 1 and "code 25" in result.stderr
    hid = hold["hold"]["id"]
    captured = _json(cli("holds", "capture", hid, "3", "--json", db_url=db_url))
    assert captured["hold"]["status"] == "captured" and captured["hold"]["captured"] == "3"
    assert captured["entry"]["hold"] == hid and captured["balance"]["amount"] == "7"
    result = cli("holds", "void", hid, db_url=db_url)
    assert result.returncode == 1 and "captured, not pending" in result.stderr
    second = _json(cli("holds", "create", aid, "1", "--json", db_url=db_url))["hold"]["id"]
    assert "voided" in cli("holds", "void", second, db_url=db_url).stdout
    listed = _json(cli("holds", "list", aid, "--status", "voided", "--json", db_url=db_url))
    assert [h["id"] for h in listed["data"]] == [second]
    assert "expired 0 holds" in cli("holds", "expire", db_url=db_url).stdout
    at_topup = top["entry"]["created_at"]
    found = _json(cli("balance-at", aid, at_topup, "--json", db_url=db_url))
    assert (found["amount"], found["seq"]) == ("10", 1)
    assert (
        _json(cli("balance-at", aid, "2001-01-01T00:00:00Z", "--json", db_url=db_url))["amount"]
        == "0"
    )
    result = cli("balance-at", aid, "yesterday", db_url=db_url)
    assert result.returncode == 1 and "RFC 3339" in result.stderr
    assert cli("verify", db_url=db_url).returncode == 0


def test_backup_and_restore(engine: str, db_url: str, tmp_path: Path) -> None:
    aid = _new_account("euros", db_url)["id"]
    _json(cli("topup", aid, "12.5", "--json", db_url=db_url))
    copy = tmp_path / "copy.db"
    result = cli("backup", str(copy), db_url=db_url)
    if engine == "postgresql":
        assert result.returncode == 2 and "pg_dump" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert "backed up 1 accounts and 1 entries" in result.stdout and copy.exists()
    # Each stage says where it stands (a log gets each stage's last line at least).
    stages = [line.split(":")[0] for line in result.stderr.splitlines()]
    assert stages == ["copying", "checking integrity", "verifying"], result.stderr
    assert "1 of 1 accounts (100%)" in result.stderr
    again = cli("backup", str(copy), db_url=db_url)
    assert again.returncode == 2 and "--force" in again.stderr
    backed_up = copy.read_bytes()
    # Restore into a new database, and refuse to overwrite one that has accounts.
    fresh = sqlite_url(tmp_path / "restored.db")
    result = cli("restore", str(copy), db_url=fresh)
    assert result.returncode == 0 and "ledger verified" in result.stdout, result.stderr
    # Verified before it is copied; the copy is not verified again (nothing migrated).
    stages = [line.split(":")[0] for line in result.stderr.splitlines()]
    assert stages == ["checking integrity", "verifying", "copying"], result.stderr
    shown = _json(cli("accounts", "show", aid, "--json", db_url=fresh))
    assert shown["balances"]["live"]["amount"] == "12.5"
    refused = cli("restore", str(copy), db_url=db_url)
    assert refused.returncode == 2 and "--force" in refused.stderr
    _json(cli("topup", aid, "1", "--json", db_url=db_url))
    assert cli("restore", str(copy), "--force", db_url=db_url).returncode == 0
    shown = _json(cli("accounts", "show", aid, "--json", db_url=db_url))
    assert shown["balances"]["live"]["amount"] == "12.5"
    # Restoring read the backup and left it as it was: same bytes, no -wal or -shm.
    assert copy.read_bytes() == backed_up
    assert sorted(p.name for p in tmp_path.glob("copy.db*")) == ["copy.db"]
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    result = cli("restore", str(garbage), db_url=fresh)
    assert result.returncode == 2 and "not a SQLite database" in result.stderr


def test_balance_command_uses_the_client(server: Server, admin) -> None:  # type: ignore[no-untyped-def]
    account = admin.account("prepaid", "pounds")
    admin.topup(account["id"], "9.2")
    key = admin.key(account["id"])["key"]
    env = {"MESSAGEBIRD_ACCESS_KEY": key, "BIRDBALANCE_BASE_URL": server.url}
    result = cli("balance", db_url="sqlite:///unused.db", env=env)
    assert result.returncode == 0 and result.stdout.strip() == "9.2 pounds (prepaid)"
    result = cli("balance", "--json", db_url="sqlite:///unused.db", env=env)
    assert json.loads(result.stdout) == {"payment": "prepaid", "type": "pounds", "amount": 9.2}
    env["MESSAGEBIRD_ACCESS_KEY"] = "x" * 25
    result = cli("balance", db_url="sqlite:///unused.db", env=env)
    assert result.returncode == 1 and "incorrect access_key" in result.stderr
    result = cli("balance", db_url="sqlite:///unused.db")
    assert result.returncode == 2 and "MESSAGEBIRD_ACCESS_KEY" in result.stderr


def test_check_is_a_nagios_plugin(server: Server, admin) -> None:  # type: ignore[no-untyped-def]
    account = admin.account("prepaid", "euros")
    admin.topup(account["id"], "60")
    env = {
        "MESSAGEBIRD_ACCESS_KEY": admin.key(account["id"])["key"],
        "BIRDBALANCE_BASE_URL": server.url,
    }

    def run(*args: str) -> tuple[int, str]:
        result = cli("check", *args, db_url="sqlite:///unused.db", env=env)
        assert result.stdout.count("\n") == 1, result.stdout  # exactly one line
        return result.returncode, result.stdout.strip()

    assert run("-w", "50", "-c", "10") == (0, "BALANCE OK - 60 euros | balance=60;50:;10:;0;")
    assert admin.post(account["id"], "charges", amount="15.5").status_code == 201  # 44.5
    assert run("-w", "50", "-c", "10")[0] == 1
    assert admin.post(account["id"], "charges", amount="40").status_code == 201
    code, line = run("--warning", "50", "--critical", "10")
    assert code == 2 and line.startswith("BALANCE CRITICAL - 4.5 euros (below 10)")
    # Ranges need no order: critical is judged first (4.5 is below 50).
    assert run("-w", "10", "-c", "50")[0] == 2
    assert run("-w", "~:4", "-c", "@0:1") == (
        1,
        "BALANCE WARNING - 4.5 euros (above 4) | balance=4.5;~:4;@0:1;0;",
    )
    # Anything that keeps the check from judging is UNKNOWN (3) on stdout, never CRITICAL.
    bad = cli("check", "-w", "ten", "-c", "5", db_url="sqlite:///unused.db", env=env)
    assert bad.returncode == 3 and "not a threshold range" in bad.stdout and not bad.stderr
    assert cli("check", "-c", "5", db_url="sqlite:///unused.db", env=env).returncode == 3
    env["MESSAGEBIRD_ACCESS_KEY"] = "x" * 25
    assert run("-w", "50", "-c", "10") == (3, "BALANCE UNKNOWN - the access key was refused")
    env["BIRDBALANCE_BASE_URL"] = "http://127.0.0.1:9"
    code, line = run("-w", "50", "-c", "10", "--timeout", "2")
    assert code == 3 and line.startswith("BALANCE UNKNOWN - ")


def test_backup_while_a_server_writes_is_one_consistent_state(tmp_path: Path) -> None:
    import threading

    import httpx

    from tests.servers import Admin

    url = sqlite_url(tmp_path / "live.db")
    srv = Server(db_url=url, log_path=tmp_path / "live.log").start()
    stop = threading.Event()
    try:
        admin = Admin(srv.url)
        aid = admin.account()["id"]
        admin.topup(aid, "100000")

        def charge_forever() -> None:
            with httpx.Client(base_url=srv.url, headers=admin.http.headers) as client:
                n = 0
                while not stop.is_set():
                    n += 1
                    client.post(
                        f"/v1/accounts/{aid}/charges",
                        json={"amount": "1"},
                        headers={"Idempotency-Key": f"bg-{n}"},
                    )

        writer = threading.Thread(target=charge_forever)
        writer.start()
        copies = []
        for i in range(3):
            copy = tmp_path / f"online-{i}.db"
            # A process of its own, as an operator runs it beside the server: in this one
            # it would hold the GIL and starve the writer thread.
            result = cli_process("backup", str(copy), db_url=url)
            assert result.returncode == 0, result.stderr
            copies.append(copy)
        stop.set()
        writer.join()
        admin.http.close()
    finally:
        stop.set()
        srv.stop()
    seen = []
    for copy in copies:
        # Each copy is a state that existed: its balance is what its entries say.
        assert cli("verify", db_url=sqlite_url(copy)).returncode == 0
        shown = _json(cli("accounts", "show", aid, "--json", db_url=sqlite_url(copy)))
        live = shown["balances"]["live"]
        assert int(live["amount"]) == 100000 - (live["entries"] - 1)
        seen.append(live["entries"])
    assert seen == sorted(seen) and seen[-1] > seen[0], seen  # taken while writes went on


def test_watch_alerts_once_across_restarts_and_a_receiver_outage(
    server: Server,
    admin,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from birdbalance.webhooks import verify_webhook
    from tests.receivers import Receiver

    account = admin.account("prepaid", "euros")
    admin.topup(account["id"], "60")
    secret = "whsec_watch-test-0123456789"
    receiver = Receiver().start()
    log = tmp_path / "events.jsonl"
    env = {
        "MESSAGEBIRD_ACCESS_KEY": admin.key(account["id"])["key"],
        "BIRDBALANCE_BASE_URL": server.url,
        "BIRDBALANCE_WATCH_WEBHOOK_SECRET": secret,
    }
    state = tmp_path / "watch.json"
    command = f"sh -c 'cat >> {log}; echo >> {log}'"

    def run_once() -> list[dict]:  # type: ignore[type-arg]
        # Each run is a fresh process: a restart every time.
        result = cli(
            "watch", "--below", "50", "--below", "10", "--hysteresis", "5",
            "--webhook", receiver.url, "--command", command, "--state", str(state), "--once",
            db_url="sqlite:///unused.db", env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines()]

    def charge(amount: str) -> None:
        assert admin.post(account["id"], "charges", amount=amount).status_code == 201

    try:
        assert run_once() == []  # 60: above both lines
        charge("15")  # 45
        [low] = run_once()
        assert low["type"] == "balance.low" and low["data"]["threshold"] == "50"
        assert low["data"]["available"] == "45" and low["data"]["source"] == server.url
        assert run_once() == []  # restarted, same balance: nothing again
        charge("1")
        assert run_once() == []  # still low
        receiver.stop()  # the receiver goes away; events wait in the state file
        charge("44")  # 0: low 10 and depleted
        raised = run_once()
        assert [(e["type"], e["data"].get("threshold")) for e in raised] == [
            ("balance.low", "10"),
            ("balance.depleted", None),
        ]
        assert len(json.loads(state.read_text())["outbox"]) == 2  # webhook still owed
        receiver.start()
        assert run_once() == []  # nothing new: the owed events go out now
        received = receiver.wait_for(3)
        time.sleep(0.2)
        ids = [r.event_id for r in received]
        assert sorted(ids) == sorted([low["id"]] + [e["id"] for e in raised])  # once each
        for r in received:
            event = verify_webhook(r.body, r.signature, secret)
            assert event["id"] == r.event_id
        # The command got every event once, the first time (it never failed).
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        assert [e["id"] for e in lines] == [low["id"]] + [e["id"] for e in raised]
        assert json.loads(state.read_text())["outbox"] == []
        # No key in the state file.
        assert env["MESSAGEBIRD_ACCESS_KEY"] not in state.read_text()
    finally:
        receiver.stop()


def test_watch_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    env = {"MESSAGEBIRD_ACCESS_KEY": "x" * 25, "BIRDBALANCE_BASE_URL": "http://127.0.0.1:9"}
    unsigned = cli("watch", "--below", "5", "--webhook", "http://x", "--once",
                   db_url="sqlite:///unused.db", env=env)  # fmt: skip
    assert unsigned.returncode == 2 and "BIRDBALANCE_WATCH_WEBHOOK_SECRET" in unsigned.stderr
    negative = cli("watch", "--below", "-5", "--once", db_url="sqlite:///unused.db", env=env)
    assert negative.returncode == 2 and "negative" in negative.stderr
    state = tmp_path / "s.json"
    state.write_text("garbage")
    damaged = cli("watch", "--state", str(state), "--once", db_url="sqlite:///unused.db", env=env)
    assert damaged.returncode == 1 and "not JSON" in damaged.stderr
    down = cli("watch", "--state", str(tmp_path / "t.json"), "--once", "--timeout", "1",
               db_url="sqlite:///unused.db", env=env)  # fmt: skip
    assert down.returncode == 1 and "could not read the balance" in down.stderr
