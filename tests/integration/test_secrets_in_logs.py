"""A full run's server log holds no access key, admin token (configured or stored), key
secret, webhook secret or session."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.integration.test_dashboard import sign_in
from tests.servers import ADMIN_TOKEN, Admin, Server, cli


def test_the_log_of_a_full_run_holds_no_secret(tmp_path: Path) -> None:
    key_secret = "the-key-secret-of-this-test-run-0123456789"
    db_url = f"sqlite:///{tmp_path / 'secrets.db'}"
    made = cli(
        "tokens",
        "create",
        "--name",
        "ops",
        "--scope",
        "write",
        "--json",
        db_url=db_url,
        env={"BIRDBALANCE_KEY_SECRET": key_secret},
    )
    stored_token = json.loads(made.stdout)["token"]
    server = Server(
        db_url=db_url,
        log_path=tmp_path / "server.log",
        # Failing deliveries log their errors: give them something to log.
        env={
            "BIRDBALANCE_WEBHOOK_RETRY_BASE_S": "0.05",
            "BIRDBALANCE_WEBHOOK_RETRY_CAP_S": "0.1",
            "BIRDBALANCE_KEY_SECRET": key_secret,
            "BIRDBALANCE_AUTH_FAILURES_PER_ADDRESS": "6",
        },
    ).start()
    secrets: list[str] = [ADMIN_TOKEN, stored_token, key_secret]
    try:
        admin = Admin(server.url)
        account = admin.account(name="Quiet")["id"]
        admin.topup(account, "10")
        live, test = admin.key(account), admin.key(account, "test")
        secrets += [live["key"], test["key"]]
        hook = admin.http.post(
            "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "account": account}
        )
        secrets.append(hook.json()["secret"])
        admin.http.post(f"/v1/accounts/{account}/alerts", json={"below": "5"})
        assert admin.post(account, "charges", amount="6").status_code == 201
        with httpx.Client(base_url=server.url, timeout=10) as client:
            rotated = client.post(
                f"/v1/keys/{live['id']}/rotate",
                json={},
                headers={"Authorization": f"Bearer {stored_token}"},
            )
            assert rotated.status_code == 201, rotated.text
            secrets.append(rotated.json()["key"]["key"])
            for key in (live["key"], test["key"], "A" * 25, "x" * 500):
                client.get("/balance", headers={"Authorization": f"AccessKey {key}"})
                client.get("/balance", params={"access_key": key})
            client.get("/v1/accounts", headers={"Authorization": "Bearer " + "y" * 40})
            for n in range(5):  # into the failed-authentication throttle
                client.get("/balance", headers={"Authorization": f"AccessKey {'Q' * 24}{n}"})
        for credential in (live["key"], ADMIN_TOKEN, stored_token, "WrongWrongWrongWrongWrong"):
            with httpx.Client(base_url=server.url, timeout=10) as browser:
                signed = sign_in(browser, credential)
                cookie = re.search(r"bb_session=([^;]+)", signed.headers.get("set-cookie", ""))
                if cookie is not None:
                    secrets.append(cookie[1])
                    assert browser.get(f"/dashboard/accounts/{account}").status_code in (200, 404)
        admin.http.close()
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "birdbalance serving" in log  # the log is the server's
    for secret in secrets:
        assert secret not in log, f"a secret ({secret[:4]}…) is in the server log"
