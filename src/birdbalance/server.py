"""Running the service: schema check, first-start demo data, then granian.

granian's worker processes each build their own app from the same :class:`Settings`
(passed by value), so no worker shares a connection or a thread with another.
"""

from __future__ import annotations

import gc
import resource
import secrets
import tempfile
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Final

from birdbalance.errors import SchemaOutOfDate
from birdbalance.http.app import BirdbalanceApp, create_app
from birdbalance.key_secret import load_key_secret
from birdbalance.ledger import EntryKind
from birdbalance.service import Service
from birdbalance.settings import Settings
from birdbalance.storage import Store

DEMO_TOPUP = "103"
#: Open files (so connections) a server process asks for at most.
MAX_OPEN_FILES: Final = 1 << 20
#: Client connections one node holds at once, at most (all its workers together). Past
#: it new connections wait in the listen queue; below it an idle socket costs little.
MAX_CONNECTIONS: Final = 16_384
#: Open files kept for everything but client connections: database files and pools,
#: webhook and SMTP sends, logs, the metrics files.
RESERVED_FILES: Final = 512
#: The kernel's queue of connections not yet accepted (it caps this at somaxconn).
LISTEN_BACKLOG: Final = 4096


def ensure_schema(store: Store) -> list[str]:
    """Create the schema in a brand-new database; refuse an out-of-date one."""
    current, latest = store.schema_version()
    if current == 0:
        applied = store.migrate()
        store.check_key_secret()
        return applied
    if current < latest:
        raise SchemaOutOfDate(
            f"the database schema is at version {current} and this birdbalance needs {latest}:"
            " run `birdbalance migrate` (back the database up first)"
        )
    if current > latest:
        raise SchemaOutOfDate(
            f"the database schema ({current}) is newer than this birdbalance ({latest}):"
            " upgrade birdbalance"
        )
    store.check_key_secret()
    return []


@dataclass(frozen=True, slots=True)
class Demo:
    account_id: str
    live_key: str
    test_key: str


def seed_demo(store: Store) -> Demo:
    """A prepaid euro account with 103 on each ledger and one key per ledger."""
    service = Service(store)
    account = service.create_account({"payment": "prepaid", "type": "euros", "name": "Demo"}, None)
    keys = {}
    for mode in ("live", "test"):
        service.post_entry(
            account.id,
            EntryKind.TOPUP,
            {"amount": DEMO_TOPUP, "mode": mode, "reference": "demo"},
            f"demo-topup-{account.id}-{mode}",
        )
        secret = service.create_key(account.id, {"mode": mode}, None).key
        assert isinstance(secret, str)  # a new key's secret is in the answer, this once
        keys[mode] = secret
    return Demo(account.id, keys["live"], keys["test"])


def generated_admin_token() -> str:
    return secrets.token_urlsafe(24)


def _load_app(settings: Settings, *_: object) -> BirdbalanceApp:
    app = create_app(settings)
    # What the worker has imported and built lives as long as it does: freezing it keeps
    # it out of the collector's full passes, which otherwise walk all of it every few
    # thousand requests (a 15-20 ms pause, most of GET /balance's p99 under load).
    gc.freeze()
    return app


def connections_per_worker(settings: Settings, open_files: int) -> int:
    """How many client connections each worker holds at once.

    granian's own default is 1,024 per worker (its listen backlog divided among the
    workers). A client that opened that many sockets and sent nothing would leave new
    connections queued behind them until its header timeout dropped them; with the bound
    raised to what the open-files limit allows, one client's idle sockets take a share of
    the node's capacity instead of all of it.
    """
    if open_files == resource.RLIM_INFINITY or open_files < 0:
        open_files = MAX_OPEN_FILES
    usable = max(1024, min(open_files, MAX_OPEN_FILES) - RESERVED_FILES)
    return max(1, min(usable, MAX_CONNECTIONS) // settings.workers)


def granian_options(settings: Settings, open_files: int = 1024) -> dict[str, Any]:
    """How birdbalance runs granian (the benchmarks run their reference app the same way).

    ``open_files``: the process's soft limit of open files, which bounds its connections.
    """
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    return {
        "address": settings.host,
        "port": settings.port,
        "interface": Interfaces.ASGI,
        # HTTP/1.1 only: what MessageBird's clients speak; skips protocol sniffing.
        "http": HTTPModes.http1,
        # A client that trickles its headers is dropped (the body has the same limit).
        "http1_settings": HTTP1Settings(
            header_read_timeout=round(settings.request_timeout_s * 1000)
        ),
        "workers": settings.workers,
        "backlog": LISTEN_BACKLOG,
        "backpressure": connections_per_worker(settings, open_files),
        # Access logs would record ?access_key=... query strings: keep them off.
        "log_access": False,
        "workers_kill_timeout": 30,
    }


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; the new limit.

    Every connection is a file: with a common default of 1,024, one client holding a
    thousand idle sockets would leave none for anyone else. granian keeps idle sockets
    cheaply, so the bound that matters is the system's (the hard limit; raise it with
    ``ulimit -Hn`` or the service manager's ``LimitNOFILE`` for more).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else MAX_OPEN_FILES
    wanted = min(wanted, MAX_OPEN_FILES)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):  # a system cap below the hard limit (macOS): keep it
        return soft
    return wanted


def run(settings: Settings) -> None:
    """Serve until interrupted (SIGINT/SIGTERM finish in-flight requests first)."""
    from granian.server import Server

    open_files = raise_open_files_limit()  # the workers inherit it

    if settings.session_secret is None:
        # One secret for every worker of this run, so a session works whichever answers.
        settings = replace(settings, session_secret=secrets.token_urlsafe(32))
    # Read (or make) the key secret once, so workers never race to create its file.
    settings = replace(settings, key_secret=load_key_secret(settings).decode("utf-8"))
    # The workers add up their metrics here, so /metrics reports the node, whichever
    # worker answers the scrape (see birdbalance.shared_counters).
    with tempfile.TemporaryDirectory(prefix="birdbalance-metrics-") as metrics_dir:
        settings = replace(settings, metrics_dir=metrics_dir)
        server = Server("birdbalance.http.app:create_app", **granian_options(settings, open_files))
        server.serve(target_loader=partial(_load_app, settings))
