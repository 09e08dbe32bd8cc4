"""Text classes that once got a 500 now get a 4xx in the errors shape, on both engines.

Lone surrogates (JSON escapes spell them) in values and in field names; digits that
``str.isdigit`` takes and ``int`` refuses; times whose offset puts them past the
calendar; NUL, which PostgreSQL's text cannot hold; non-ASCII and undecodable session
cookies on the dashboard. Nothing is written, and the server logs no traceback.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from tests.servers import ADMIN_TOKEN, Admin, Server

#: Query parameters of each listing, and the offending texts to send in them.
LISTINGS = [
    "/v1/accounts",
    "/v1/accounts/{account}/entries",
    "/v1/accounts/{account}/statement",
    "/v1/accounts/{account}/holds",
    "/v1/accounts/{account}/daily",
    "/v1/audit",
    "/v1/events",
    "/v1/deliveries",
]
QUERY_TEXT = ["\u00b2", "1\u00b2", "\x00", "a\x00b", "9999-12-31T23:59:59-23:59"]
QUERY_NAMES = ["limit", "cursor", "days", "search", "reference", "actor", "action", "from", "to"]


def _is_error_shape(response: httpx.Response) -> bool:
    errors = response.json().get("errors")
    return isinstance(errors, list) and bool(errors) and "code" in errors[0]


def test_every_text_class_gets_a_4xx_in_the_errors_shape(database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = Server(db_url=database_url, log_path=log).start()
    admin = Admin(server.url)
    try:
        account = admin.account()["id"]
        admin.topup(account, "10")
        entries_before = admin.http.get(f"/v1/accounts/{account}/entries").json()["data"]
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"}
        # Each body spells a lone surrogate with a JSON escape (\ud800).
        charges = f"/v1/accounts/{account}/charges"
        bodies = [
            ("/v1/accounts", r'{"payment":"prepaid","type":"euros","name":"\ud800"}'),
            ("/v1/accounts", r'{"payment":"prepaid","type":"euros","\ud800":"x"}'),
            (charges, r'{"amount":"1","reference":"\ud800"}'),
            (charges, r'{"amount":"1","metadata":{"\ud800":"x"}}'),
            (charges, r'{"amount":"1","\ud800":"x"}'),
            (f"/v1/accounts/{account}/holds", r'{"amount":"1","reference":"a\udfffb"}'),
            (f"/v1/accounts/{account}/alerts", r'{"below":"1","recharge":{"\ud800":1}}'),
        ]
        for n, (path, body) in enumerate(bodies):
            r = httpx.post(
                server.url + path,
                content=body.encode(),
                headers={**auth, "Idempotency-Key": f"text-class-{n}"},
            )
            assert 400 <= r.status_code < 500 and _is_error_shape(r), (path, body, r.text)

        # A Content-Length of digits int() refuses (² in Latin-1, as headers are read).
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(
                f"POST /v1/accounts/{account}/charges HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: Bearer {ADMIN_TOKEN}\r\nIdempotency-Key: text-class-cl\r\n"
                "Content-Length: ".encode()
                + b"\xb2\r\n\r\n"
            )
            answer = conn.recv(65536)
        # A 4xx, or the connection dropped by the HTTP layer: never a 5xx.
        assert not answer.startswith(b"HTTP/1.1 5"), answer

        for listing in LISTINGS:
            for name in QUERY_NAMES:
                for text in QUERY_TEXT:
                    path = listing.format(account=account)
                    r = admin.http.get(path, params={name: text})
                    assert r.status_code < 500 and (r.status_code < 400 or _is_error_shape(r)), (
                        path,
                        name,
                        text,
                        r.text,
                    )
        r = admin.http.get(
            f"/v1/accounts/{account}/balance", params={"at": "9999-12-31T23:59:59-23:59"}
        )
        assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == "at", r.text

        for cookie in ["bb_session=\u00e9.\u00e9".encode(), b"bb_session=\xff\xfe.x"]:
            r = httpx.get(server.url + "/dashboard", headers={"Cookie": cookie})
            assert r.status_code < 500, (cookie, r.status_code)

        after = admin.http.get(f"/v1/accounts/{account}/entries").json()["data"]
        assert after == entries_before
        assert len(admin.http.get("/v1/accounts").json()["data"]) == 1
    finally:
        admin.http.close()
        server.stop()
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
