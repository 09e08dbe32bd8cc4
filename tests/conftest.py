from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Admin, Server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server process on SQLite, shared by the tests that create their own accounts."""
    folder: Path = tmp_path_factory.mktemp("server")
    srv = Server(db_path=folder / "bb.db", log_path=folder / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def admin(server: Server) -> Iterator[Admin]:
    client = Admin(server.url)
    yield client
    client.http.close()
