"""Fixtures shared by every test folder: an engine, a fresh database, a server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import (
    ADMIN_URL,
    ENGINES,
    SKIP_REASON,
    PostgresCluster,
    in_ci,
    sqlite_url,
)
from tests.servers import OPEN_ADMINS, Admin, Server

_POSTGRES_UNREACHABLE = pytest.StashKey[str]()


def _on_postgres(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "postgresql" in callspec.params.values()


#: Modules whose tests take tens of seconds each: they go first, so that the workers
#: (pytest-xdist) share them out at the start and finish together on the short ones.
LONG_FIRST = frozenset(
    {
        "test_fuzz_api",
        "test_ledger_stateful",
        "test_crash",
        "test_bounds",
        "test_serving_edge",
        "test_limits_under_concurrency",
        "test_metrics_api",
        "test_generated_client",
        "test_nodes",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The long tests first; outside CI, without a reachable PostgreSQL, leave its tests
    out (one line says so)."""
    items.sort(
        key=lambda item: (
            item.module is None or item.module.__name__.rsplit(".", 1)[-1] not in LONG_FIRST
        )
    )
    if in_ci() or not any(_on_postgres(item) for item in items):
        return
    error = PostgresCluster.reach()
    if error is None:
        return
    left_out = [item for item in items if _on_postgres(item)]
    items[:] = [item for item in items if not _on_postgres(item)]
    config.hook.pytest_deselected(items=left_out)
    config.stash[_POSTGRES_UNREACHABLE] = f"{len(left_out)} " + SKIP_REASON.format(
        url=ADMIN_URL, error=error
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reason = terminalreporter.config.stash.get(_POSTGRES_UNREACHABLE, None)
    if reason is not None:
        terminalreporter.write_line(f"SKIPPED {reason}", yellow=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """The PostgreSQL cluster of this run; skips (outside CI) when none is reachable."""
    error = PostgresCluster.reach()
    if error is not None:
        reason = SKIP_REASON.format(url=ADMIN_URL, error=error)
        if in_ci():
            pytest.fail(reason + " -- but CI=true, so they must run", pytrace=False)
        pytest.skip(reason)
    cluster = PostgresCluster()
    yield cluster
    cluster.drop_all()


def _new_url(engine: str, request: pytest.FixtureRequest, folder: Path) -> str:
    if engine == "sqlite":
        return sqlite_url(folder / "birdbalance.db")
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each test that uses it runs once per database engine."""
    return str(request.param)


@pytest.fixture
def database_url(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database of ``engine`` for one test."""
    return _new_url(engine, request, tmp_path)


@pytest.fixture(scope="session", params=ENGINES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One real server process per engine, shared by the tests that make their own accounts."""
    engine = str(request.param)
    folder: Path = tmp_path_factory.mktemp(f"server-{engine}")
    url = _new_url(engine, request, folder)
    srv = Server(db_url=url, log_path=folder / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def admin(server: Server) -> Iterator[Admin]:
    client = Admin(server.url)
    yield client
    client.http.close()


@pytest.fixture(autouse=True)
def _close_admins() -> Iterator[None]:
    """Close the Admin clients a test opened, whether or not it got to close them."""
    before = set(OPEN_ADMINS)
    yield
    for client in set(OPEN_ADMINS) - before:
        client.http.close()
