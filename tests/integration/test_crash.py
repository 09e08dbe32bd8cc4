"""SIGKILL under a mixed write load, again and again: what was acknowledged survives
exactly once, what was not is either whole or absent, and ``verify`` stays clean.

Each write carries its own ``Idempotency-Key`` and a reference naming it, so the ledger
can be read back and matched write by write: first as the crashes left it, then after
every write has been sent again with its key (as a client that saw no answer would).
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.servers import ADMIN_TOKEN, Admin, Server, cli

KILLS = 20
THREADS = 4
#: How long the load runs before each kill: long enough for batches to be in flight.
LOAD_S = (0.1, 0.6)
#: Writes acknowledged per round at least, waited for up to ROUND_MAX_S.
ROUND_WRITES = 10
ROUND_MAX_S = 10.0
WORKERS = {"sqlite": 1, "postgresql": 2}
#: What a write may answer under load: done, or refused for want of funds.
ACCEPTED = {200, 201}
REFUSED = {422}
#: The reference of the top-ups that fund the accounts before the load.
SEED = "crash-seed"


@dataclass
class Write:
    idem: str
    path: str
    body: dict[str, Any]
    #: None: no answer arrived (the server died first).
    status: int | None = None
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def acknowledged(self) -> bool:
        return self.status is not None

    @property
    def entry(self) -> str | None:
        """The entry its answer names (topups, charges, refunds, captures)."""
        entry = self.answer.get("entry")
        return entry["id"] if isinstance(entry, dict) else None


class Book:
    """Every write sent so far, and what later writes may refer to."""

    def __init__(self) -> None:
        self.log: list[Write] = []
        self.charges: list[Write] = []  # acknowledged charges, which refunds may name
        self.holds: list[Write] = []  # acknowledged holds no write has resolved yet
        self.lock = threading.Lock()

    def accepted(self) -> int:
        """How many writes were acknowledged as done so far."""
        with self.lock:
            return sum(1 for write in self.log if write.status in ACCEPTED)


class Load:
    """Threads sending a random mix of writes until told to stop or the server dies."""

    def __init__(self, url: str, accounts: list[str], book: Book, seed: int) -> None:
        self.url, self.accounts, self.book = url, accounts, book
        self.random = random.Random(seed)
        self.stop = threading.Event()

    def _next(self) -> Write:
        book, rnd = self.book, self.random
        with book.lock:
            idem = f"crash-{len(book.log)}"
            account = rnd.choice(self.accounts)
            roll = rnd.random()
            if roll < 0.15:
                write = Write(idem, f"/v1/accounts/{account}/topups", {"amount": "5"})
            elif roll < 0.25 and book.charges:
                charge = rnd.choice(book.charges)
                refund = {"amount": "0.01", "charge": charge.entry}
                write = Write(idem, charge.path.replace("/charges", "/refunds"), refund)
            elif roll < 0.35:
                write = Write(idem, f"/v1/accounts/{account}/holds", {"amount": "0.05"})
            elif roll < 0.45 and book.holds:
                hold = book.holds.pop(rnd.randrange(len(book.holds)))  # resolved once
                action = rnd.choice(["capture", "void"])
                body = {"amount": "0.02"} if action == "capture" else {}
                write = Write(idem, f"/v1/holds/{hold.answer['hold']['id']}/{action}", body)
            else:
                amount = f"0.{rnd.randint(1, 99):02d}"
                write = Write(idem, f"/v1/accounts/{account}/charges", {"amount": amount})
            if not write.path.endswith(("/capture", "/void")):
                write.body["reference"] = idem
            book.log.append(write)
            return write

    def _answered(self, write: Write, r: httpx.Response) -> None:
        with self.book.lock:
            write.answer, write.status = r.json(), r.status_code
            if r.status_code == 201 and write.path.endswith("/charges"):
                self.book.charges.append(write)
            elif r.status_code == 201 and write.path.endswith("/holds"):
                self.book.holds.append(write)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                write = self._next()
                try:
                    r = send(client, write)
                except httpx.TransportError:
                    return  # killed: this write has no answer
                self._answered(write, r)


def send(client: httpx.Client, write: Write) -> httpx.Response:
    return client.post(
        write.path,
        json=write.body,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Idempotency-Key": write.idem},
    )


def entries_of(admin: Admin, account: str) -> list[dict[str, Any]]:
    """Every entry of the live ledger of ``account``, oldest first."""
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "200", **({"cursor": cursor} if cursor else {})}
        page = admin.http.get(f"/v1/accounts/{account}/entries", params=params).json()
        found += page["data"]
        cursor = page.get("next_cursor")
        if not cursor:
            return found[::-1]


def check_ledger(admin: Admin, accounts: list[str], log: list[Write]) -> dict[str, Any]:
    """Each write's entry at most once, each acknowledged one exactly once, nothing else."""
    entries = [e for account in accounts for e in entries_of(admin, account)]
    by_id = {e["id"]: e for e in entries}
    assert len(by_id) == len(entries)
    by_reference = Counter(e["reference"] for e in entries if e["reference"])
    twice = [ref for ref, n in by_reference.items() if n > 1]
    assert not twice, f"writes applied twice: {twice[:5]}"
    known = {w.idem for w in log}
    strays = set(by_reference) - known
    assert all(s.startswith(SEED) for s in strays), (
        f"entries no write asked for: {sorted(strays)[:5]}"
    )
    for write in log:
        if write.status in ACCEPTED and write.entry:
            assert write.entry in by_id, f"acknowledged {write.idem} is missing"
        if write.status in ACCEPTED and "reference" in write.body and write.entry:
            assert by_id[write.entry]["reference"] == write.idem
    return by_id


def verify_clean(server: Server) -> None:
    result = cli("verify", "--json", db_url=server.db_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["problems"] == [], result.stdout


def same_answer(write: Write, r: httpx.Response) -> bool:
    """A replay of an accepted write answers as the write did (a hold: the same hold)."""
    if r.status_code != write.status:
        return False
    if write.path.endswith(("/holds", "/void")):
        return bool(r.json()["hold"]["id"] == write.answer["hold"]["id"])
    return bool(r.json() == write.answer)


def test_sigkill_under_mixed_writes_loses_and_doubles_nothing(
    engine: str, database_url: str, tmp_path: Path
) -> None:
    # SQLite has one writer, so one worker is its deployment; PostgreSQL runs several.
    workers = WORKERS[engine]
    rng = random.Random(7)
    book = Book()
    server = Server(
        db_url=database_url,
        log_path=tmp_path / "server.log",
        extra_args=("--no-demo", "--workers", str(workers)),
    ).start()
    admin = Admin(server.url)
    accounts = [admin.account()["id"] for _ in range(2)]
    for n, account in enumerate(accounts):
        r = admin.post(account, "topups", idem=f"{SEED}-{n}", amount="20", reference=f"{SEED}-{n}")
        assert r.status_code == 201, r.text
    admin.http.close()
    for kill in range(KILLS):
        load = Load(server.url, accounts, book, seed=rng.randrange(1 << 30))
        threads = [threading.Thread(target=load.run, daemon=True) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(*LOAD_S))
        # A busy machine starts the load slowly: each kill lands among acknowledged writes.
        deadline = time.monotonic() + ROUND_MAX_S
        while book.accepted() < ROUND_WRITES * (kill + 1) and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()
        load.stop.set()
        for thread in threads:
            thread.join(timeout=30)
            assert not thread.is_alive()
        server = Server(
            db_url=database_url, log_path=server.log_path, extra_args=server.extra_args
        ).start()
        if kill % 5 == 4:
            verify_clean(server)
    log = book.log
    stack = contextlib.ExitStack()
    try:
        statuses = Counter(w.status for w in log)
        assert set(statuses) <= ACCEPTED | REFUSED | {None}, statuses
        assert statuses[None] >= KILLS // 2, f"few kills caught a write in flight: {statuses}"
        assert statuses[201] + statuses[200] >= ROUND_WRITES * KILLS, statuses
        admin = Admin(server.url)
        stack.callback(admin.http.close)
        # As the crashes left it: acknowledged writes once each, the rest whole or absent.
        check_ledger(admin, accounts, log)
        verify_clean(server)
        # Every write again with its key, as a client that saw no answer retries. A
        # refused write recorded nothing, so it runs again and may now succeed.
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for write in log:
                r = send(client, write)
                if write.status in ACCEPTED:
                    assert same_answer(write, r), (write, r.text)
                else:
                    assert r.status_code in ACCEPTED | REFUSED, (write, r.text)
                    write.status, write.answer = r.status_code, r.json()
        by_id = check_ledger(admin, accounts, log)
        # Every write has an answer now, so the entries are exactly the accepted ones.
        expected = {w.entry for w in log if w.status in ACCEPTED and w.entry}
        assert {e for e, v in by_id.items() if not v["reference"].startswith(SEED)} == expected
        resolved = {w.path.split("/")[3]: w for w in log if w.status == 200}
        for write in log:
            if write.path.endswith("/holds") and write.status == 201:
                hold = admin.http.get(f"/v1/holds/{write.answer['hold']['id']}").json()
                if (resolution := resolved.get(hold["id"])) is not None:
                    action = resolution.path.rsplit("/", 1)[1]
                    assert hold["status"] == {"capture": "captured", "void": "voided"}[action]
                else:
                    assert hold["status"] == "pending", hold
        verify_clean(server)
    finally:
        stack.close()
        server.stop()
    output = server.log_path.read_text()
    assert "Traceback" not in output, output[-3000:]
    print(f"{KILLS} kills, {len(log)} writes: {dict(statuses)}")
