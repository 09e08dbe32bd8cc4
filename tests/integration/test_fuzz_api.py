"""Schemathesis against the served OpenAPI document, on both engines.

Every operation gets schema-valid and schema-violating requests (Schemathesis's positive
and negative modes): no answer is a 5xx, every error is in MessageBird's errors shape,
and a refused write changes nothing. Half the cases aim at a real account, so they get
past the 404 into validation. The run must make at least 1,000 requests per engine.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from birdbalance.http.openapi import openapi_document
from tests.databases import ENGINES
from tests.servers import ADMIN_TOKEN, Admin, Server

MIN_CASES = 1000
SCHEMA = schemathesis.openapi.from_dict(openapi_document())
SCHEMA.config.generation.update(modes=list(GenerationMode))
CASES: Counter[str] = Counter()
#: What a refused write must leave as it was (holds expire and deliveries retry on
#: their own, so their states are not in it).
STATE_SQL = (
    "SELECT (SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM entries),"
    " (SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL),"
    " (SELECT COUNT(*) FROM alert_rules WHERE deleted_at IS NULL),"
    " (SELECT COUNT(*) FROM webhooks), (SELECT COUNT(*) FROM idempotency_keys),"
    " (SELECT COALESCE(SUM(balance_minor), 0) FROM balances)"
)


class Target:
    """A server of its own (fuzzed webhooks must not reach other tests) and a real account."""

    def __init__(self, server: Server, account_id: str) -> None:
        self.server = server
        self.account_id = account_id

    def state(self) -> tuple[Any, ...]:
        url = self.server.db_url
        if url.startswith("sqlite:"):
            conn = sqlite3.connect(url.removeprefix("sqlite:///"))
            try:
                return tuple(conn.execute(STATE_SQL).fetchone())
            finally:
                conn.close()
        with psycopg.connect(url) as pg:
            row = pg.execute(STATE_SQL).fetchone()
            assert row is not None
            return tuple(row)


@pytest.fixture(scope="module", params=ENGINES)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    engine = str(request.param)
    folder: Path = tmp_path_factory.mktemp(f"fuzz-{engine}")
    if engine == "sqlite":
        url = f"sqlite:///{folder / 'fuzz.db'}"
    else:
        url = request.getfixturevalue("postgres").new_database()
    server = Server(db_url=url, log_path=folder / "server.log").start()
    admin = Admin(server.url)
    account = admin.account(name="Fuzzed")["id"]
    admin.topup(account, "1000")
    admin.http.close()
    yield Target(server, account)
    server.stop()
    log = server.log_path.read_text()
    assert "Traceback" not in log, log[-3000:]


@SCHEMA.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_5xx_errors_in_shape_and_refusals_change_nothing(case: Any, target: Target) -> None:
    engine = "sqlite" if target.server.db_url.startswith("sqlite:") else "postgresql"
    CASES[engine] += 1
    params = case.path_parameters or {}
    if "account_id" in params and zlib.crc32(repr(case.body).encode()) % 2 == 0:
        params["account_id"] = target.account_id
    writes = case.method.upper() in ("POST", "PUT", "PATCH", "DELETE")
    before = target.state() if writes else None
    response = case.call(
        base_url=target.server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    if response.status_code >= 400:
        errors = response.json().get("errors")
        assert isinstance(errors, list) and errors, where
        for error in errors:
            assert {"code", "description", "parameter"} <= set(error), where
            assert isinstance(error["code"], int) and isinstance(error["description"], str)
        if writes:
            assert target.state() == before, f"a refused write changed something: {where}"


def test_the_run_made_enough_cases(target: Target) -> None:
    engine = "sqlite" if target.server.db_url.startswith("sqlite:") else "postgresql"
    assert CASES[engine] >= MIN_CASES, CASES
