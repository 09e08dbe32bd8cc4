"""``birdbalance --config``: the CLI reads a TOML file under the environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.servers import clean_env


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "birdbalance", *args],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_reads_its_database_from_the_file(tmp_path: Path) -> None:
    config = tmp_path / "birdbalance.toml"
    url_file = tmp_path / "url"
    url_file.write_text(f"sqlite:///{tmp_path}/from-config.db\n")
    config.write_text(f'database_url_file = "{url_file}"\n')
    made = run("--config", str(config), "accounts", "create", "--payment", "prepaid",
               "--type", "euros", "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "from-config.db").exists()
    listed = run("accounts", "list", "--json", BIRDBALANCE_CONFIG=str(config))
    assert [a["id"] for a in json.loads(listed.stdout)["data"]] == [json.loads(made.stdout)["id"]]
    # The environment wins over the file.
    other = f"sqlite:///{tmp_path}/from-env.db"
    empty = run("--config", str(config), "accounts", "list", "--json",
                BIRDBALANCE_DATABASE_URL=other)  # fmt: skip
    assert empty.returncode == 0 and json.loads(empty.stdout)["data"] == []
    # A typo stops it before anything runs, naming the setting (no traceback).
    config.write_text("prot = 8000\n")
    refused = run("--config", str(config), "accounts", "list")
    assert refused.returncode != 0 and "'prot', which is no setting" in refused.stderr
    assert "Traceback" not in refused.stderr
