"""The birdbalance CLI as a user runs it: separate processes on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.servers import Server, cli


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


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


def test_verify_catches_tampering(db_url: str, tmp_path: Path) -> None:
    aid = _json(
        cli(
            "accounts", "create", "--payment", "prepaid", "--type", "euros", "--json", db_url=db_url
        )
    )["id"]
    _json(cli("topup", aid, "5", "--json", db_url=db_url))
    raw = sqlite3.connect(tmp_path / "cli.db")
    raw.execute("UPDATE balances SET balance_minor = balance_minor + 1 WHERE mode = 'live'")
    raw.commit()
    raw.close()
    result = cli("verify", db_url=db_url)
    assert result.returncode == 1 and "MISMATCH" in result.stderr
    report = json.loads(cli("verify", "--json", db_url=db_url).stdout)
    assert report["ok"] is False and report["problems"]


def test_migrate_and_out_of_date_schema(db_url: str, tmp_path: Path) -> None:
    first = cli("migrate", db_url=db_url)
    assert first.returncode == 0 and "applied 0001_initial.sql" in first.stdout
    assert "up to date" in cli("migrate", db_url=db_url).stdout
    raw = sqlite3.connect(tmp_path / "cli.db")
    raw.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'now')")
    raw.commit()
    raw.close()
    result = cli("accounts", "list", db_url=db_url)
    assert result.returncode == 1 and "newer than this birdbalance" in result.stderr


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
