"""Schemathesis against the served OpenAPI document, on both engines.

Every operation gets schema-valid and schema-violating requests (Schemathesis's positive
and negative modes), and, through hooks, bodies and query strings with the text classes
that once got 500s (lone surrogates in values and field names, digits ``int`` refuses,
offsets past the calendar, NUL): no answer is a 5xx, every answer matches its documented
schema (required fields and exact types, from :mod:`birdbalance.shapes`), every error is
in MessageBird's errors shape, and a refused write changes nothing. Half the cases aim at
a real account, so they get past the 404 into validation. The run must make at least
1,000 requests per engine.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from birdbalance.http.openapi import openapi_document
from tests.databases import ENGINES
from tests.servers import ADMIN_TOKEN, Admin, Server

#: Every test of this module runs on one xdist worker (scripts/test: --dist loadfile): the
#: targets are built once per engine, and CASES, which is per process, counts them all.
MIN_CASES = 1000
SCHEMA = schemathesis.openapi.from_dict(openapi_document())
SCHEMA.config.generation.update(modes=list(GenerationMode))
#: Text classes that once got a 500: lone surrogates (JSON escapes can spell them),
#: digits ``str.isdigit`` takes and ``int`` refuses, times whose offset puts them past
#: the calendar, NUL (which PostgreSQL's text cannot hold), and non-ASCII digits.
HOSTILE_TEXT = (
    "\ud800",
    "a\udfffb",
    "\u00b2",
    "1\u00b2",
    "\u0661\u0662",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "1970-01-01T00:00:00+23:59",
    "\x00",
    "a\x00b",
)
#: What a query string can carry of them (a URL holds UTF-8, so no lone surrogates).
HOSTILE_QUERY_TEXT = tuple(t for t in HOSTILE_TEXT if t.encode("utf-8", "ignore").decode() == t)


#: Values that pass every check, for the fields that have rules, and the fields left out.
SOUND = {"amount": "1", "below": "1", "type": "euros", "payment": "prepaid"}
UNSOUND = frozenset({"mode", "credit_limit", "hysteresis", "recharge", "expires_in", "charge"})


def _hostile_body(body: Any, text_field: str | None = None) -> st.SearchStrategy[Any]:
    """The generated body, or one of its values or field names swapped for hostile text
    (``text_field``: the operation's field of free text, kept as written)."""
    if not isinstance(body, dict) or not body:
        return st.just(body)
    names = sorted(body)

    def value(name: str, text: str) -> dict[str, Any]:
        return {**body, name: text}

    def field_name(text: str) -> dict[str, Any]:
        return {**body, text: "x"}

    def nested(name: str, text: str) -> dict[str, Any]:
        return {**body, name: {text: text}}

    def free_text(text: str) -> dict[str, Any]:
        # A body that passes every other check, so the text reaches the store: sound
        # amounts, and the hostile text in a field kept as written (a name, a reference,
        # metadata).
        sound = {k: SOUND.get(k, v) for k, v in body.items() if k not in UNSOUND}
        if text_field is not None:
            return {**sound, text_field: text}
        for name in ("reference", "name"):
            if name in sound:
                return {**sound, name: text}
        return {**sound, "metadata": {"note": text}}

    hostile = st.sampled_from(HOSTILE_TEXT)
    return st.one_of(
        st.just(body),
        st.builds(value, st.sampled_from(names), hostile),
        st.builds(field_name, hostile),
        st.builds(nested, st.sampled_from(names), hostile),
        # Most often: the text reaches the code that stores it.
        st.builds(free_text, hostile),
        st.builds(free_text, hostile),
        st.builds(free_text, hostile),
    )


def _hostile_query(query: Any) -> st.SearchStrategy[Any]:
    if not isinstance(query, dict) or not query:
        return st.just(query)
    swapped = st.builds(
        lambda name, text: {**query, name: text},
        st.sampled_from(sorted(query)),
        st.sampled_from(HOSTILE_QUERY_TEXT),
    )
    return st.one_of(st.just(query), swapped)


@dataclass(frozen=True)
class HostileRequest:
    """A generated case, and the body or query string with hostile text swapped in.

    It is sent as built here (not through ``case.call``): Schemathesis revalidates a
    changed case against the schema, and its validator cannot hold a lone surrogate.
    """

    case: Any
    body: Any
    query: Any


def _text_field(case: Any) -> str | None:
    if case.method.upper() != "POST":
        return None
    if case.path == "/v1/accounts":
        return "name"
    if case.path.rsplit("/", 1)[-1] in ("topups", "charges", "refunds", "adjustments", "holds"):
        return "reference"
    return None


def _hostile_request(case: Any) -> st.SearchStrategy[HostileRequest]:
    return st.one_of(
        _hostile_body(case.body, _text_field(case)).map(
            lambda body: HostileRequest(case, body, case.query)
        ),
        _hostile_query(case.query).map(lambda query: HostileRequest(case, case.body, query)),
    )


#: Every operation's generated cases, each with hostile text swapped in.
HOSTILE_REQUESTS = SCHEMA.as_strategy().flatmap(_hostile_request)
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
    _check(case, target)


@given(request=HOSTILE_REQUESTS)
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_hostile_text_gets_a_4xx_in_the_errors_shape(
    request: HostileRequest, target: Target
) -> None:
    case = request.case
    # Aimed at the real account, so the hostile text gets past the 404 to the code that
    # reads it (the shared check aims half the cases elsewhere).
    if "account_id" in (case.path_parameters or {}):
        case.path_parameters["account_id"] = target.account_id
    if isinstance(request.body, dict) and isinstance(request.body.get("account"), str):
        request.body["account"] = target.account_id

    def send() -> Any:
        headers = {
            **{k: str(v) for k, v in (case.headers or {}).items()},
            "Authorization": f"Bearer {ADMIN_TOKEN}",
            "Content-Type": "application/json",
        }
        # json.dumps writes a lone surrogate as the escape that spells it.
        body = None if not isinstance(request.body, dict) else json.dumps(request.body).encode()
        return httpx.request(
            case.method,
            target.server.url + case.formatted_path,
            params=request.query if isinstance(request.query, dict) else None,
            content=body,
            headers=headers,
            timeout=30,
        )

    _check(case, target, send)


def _check(case: Any, target: Target, send: Any = None) -> None:
    """No 5xx, every error in the errors shape, and a refused write changes nothing."""
    engine = "sqlite" if target.server.db_url.startswith("sqlite:") else "postgresql"
    CASES[engine] += 1
    params = case.path_parameters or {}
    if send is None and "account_id" in params and zlib.crc32(repr(case.body).encode()) % 2 == 0:
        params["account_id"] = target.account_id
    writes = case.method.upper() in ("POST", "PUT", "PATCH", "DELETE")
    before = target.state() if writes else None
    if send is None:
        response = case.call(
            base_url=target.server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
    else:
        response = send()
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, where
    if send is None:  # every answer as the document describes it (birdbalance.shapes)
        case.validate_response(response, checks=[response_schema_conformance])
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
