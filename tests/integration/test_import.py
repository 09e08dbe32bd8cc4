"""``birdbalance import FILE``: CSV and JSON lines posted through bulk requests, each line
exactly once however often the file is run or wherever a run stopped, on both engines."""

from __future__ import annotations

import json
from pathlib import Path

from tests.servers import cli


def _account(db_url: str, amount: str = "0") -> str:
    made = cli(
        "accounts", "create", "--payment", "prepaid", "--type", "euros", "--json", db_url=db_url
    )
    assert made.returncode == 0, made.stderr
    aid: str = json.loads(made.stdout)["id"]
    if amount != "0":
        assert cli("topup", aid, amount, db_url=db_url).returncode == 0
    return aid


def _live(db_url: str, aid: str) -> dict[str, object]:
    shown = cli("accounts", "show", aid, "--json", db_url=db_url)
    ledger: dict[str, object] = json.loads(shown.stdout)["balances"]["live"]
    return ledger


def test_a_csv_file_posts_each_line_once_and_reports_the_refused(
    database_url: str, tmp_path: Path
) -> None:
    aid = _account(database_url)
    file = tmp_path / "usage.csv"
    file.write_text(
        "type,account,amount,reference,linked,metadata\n"
        f"topup,{aid},10,inv-1,,\n"
        f'charge,{aid},3,sms-1,,"{{""to"": ""+316""}}"\n'
        f"charge,{aid},4,sms-2,true,\n"  # linked to the next, which cannot be afforded
        f"charge,{aid},9,sms-3,,\n"
        "\n"
        f"charge,{aid},1,sms-4,maybe,\n"  # cannot be read
        f"charge,{aid},1,sms-4,,\n"  # the same text as another line: still its own line
    )
    first = cli("import", str(file), "--json", db_url=database_url)
    assert first.returncode == 1, first.stderr
    report = json.loads(first.stdout)
    assert (report["lines"], report["posted"], report["refused"]) == (6, 3, 3)
    refused = {r["line"]: r for r in report["refused_lines"]}
    assert sorted(refused) == [4, 5, 7]
    assert refused[4]["status"] == 409
    assert (
        refused[4]["errors"][0]["description"] == "not applied: line 5 of its linked group failed"
    )
    assert refused[5]["errors"][0]["code"] == 25
    assert "linked must be true or false" in refused[7]["errors"][0]["description"]
    assert _live(database_url, aid)["amount"] == "6"
    # A second run posts nothing again.
    again = json.loads(cli("import", str(file), "--json", db_url=database_url).stdout)
    assert (again["posted"], again["replayed"], again["refused"]) == (0, 3, 3)
    assert _live(database_url, aid)["amount"] == "6"
    entries = json.loads(cli("history", aid, "--json", db_url=database_url).stdout)["data"]
    assert {"to": "+316"} in [e["metadata"] for e in entries]


def test_an_import_cut_short_resumes_where_it_stopped(database_url: str, tmp_path: Path) -> None:
    aid = _account(database_url)
    lines = [json.dumps({"type": "topup", "account": aid, "amount": "1"}) for _ in range(25)]
    file = tmp_path / "usage.jsonl"
    # A first run that stopped after ten lines (a crash, a ^C): the same first ten lines.
    file.write_text("\n".join(lines[:10]) + "\n")
    assert cli("import", str(file), "--batch", "4", db_url=database_url).returncode == 0
    file.write_text("\n".join(lines) + "\n")
    resumed = cli("import", str(file), "--batch", "7", "--json", db_url=database_url)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert (report["posted"], report["replayed"]) == (15, 10)
    assert _live(database_url, aid)["amount"] == "25"  # 25 identical lines, each once
    assert cli("verify", db_url=database_url).returncode == 0


def test_a_dry_run_judges_the_file_and_writes_nothing(database_url: str, tmp_path: Path) -> None:
    aid = _account(database_url, "2")
    file = tmp_path / "usage.jsonl"
    file.write_text(
        "".join(
            json.dumps({"type": "charge", "account": aid, "amount": "1"}) + "\n" for _ in range(3)
        )
    )
    dry = cli("import", str(file), "--dry-run", "--json", db_url=database_url)
    assert dry.returncode == 1
    assert (json.loads(dry.stdout)["posted"], json.loads(dry.stdout)["refused"]) == (2, 1)
    assert _live(database_url, aid)["amount"] == "2"
    real = json.loads(cli("import", str(file), "--json", db_url=database_url).stdout)
    assert (real["posted"], real["replayed"]) == (2, 0)


def test_a_file_that_is_not_operations_is_refused_with_a_clear_error(
    database_url: str, tmp_path: Path
) -> None:
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("type,acount,amount\ncharge,acc_x,1\n")
    refused = cli("import", str(bad_header), db_url=database_url)
    assert refused.returncode == 2 and "unknown column 'acount'" in refused.stderr
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    refused = cli("import", str(binary), db_url=database_url)
    assert refused.returncode == 2 and "not UTF-8" in refused.stderr
    nul = tmp_path / "nul.csv"
    nul.write_text(
        "type,account,amount\ncharge,acc_x,1\x00\n" + "charge,acc_x," + "9" * 200_000 + "\n"
    )
    report = json.loads(cli("import", str(nul), "--json", db_url=database_url).stdout)
    assert report["refused"] == 2 and report["lines"] == 2
    # A NUL is text to Python's csv (the operation refuses it); a field past csv's own
    # limit is that line's error, and the lines after it are read on.
    assert "not CSV" in report["refused_lines"][1]["errors"][0]["description"]
    junk = tmp_path / "junk.jsonl"
    junk.write_text('[1, 2]\n{"type": "charge", "account": "acc_x", "amount": true}\nnot json\n')
    report = json.loads(cli("import", str(junk), "--json", db_url=database_url).stdout)
    assert report["refused"] == 3 and report["posted"] == 0
    said = [r["errors"][0]["description"] for r in report["refused_lines"]]
    assert said[0] == "the line is not a JSON object" and said[2] == said[0]
    assert said[1] == 'amount must be a decimal string such as "9.2"'
