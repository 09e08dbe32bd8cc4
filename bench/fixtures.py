"""Bulk benchmark data: many accounts, keys and entries, written straight into the schema.

Creating a million accounts through the API would take longer than the benchmark, so
this writes the rows birdbalance itself would write (the schema is migrated by
birdbalance first), as a ledger that ``birdbalance verify`` accepts: every account is
prepaid, has one live key, and ``entries_per_account`` top-ups whose running balances end
at its stored balance. Ids, keys and times are derived from the account's number, so a
fixture can be rebuilt identically.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from birdbalance.key_secret import key_hasher
from birdbalance.settings import Settings
from birdbalance.storage import open_store

#: Each top-up of a fixture ledger, in minor units (scale 6): 100,000.00.
TOPUP_MINOR = 100_000 * 10**6
_CHUNK = 20_000


@dataclass(frozen=True)
class Fixture:
    url: str
    accounts: int
    entries_per_account: int

    def account_id(self, n: int) -> str:
        return f"acc_{n:026d}"

    def key(self, n: int) -> str:
        return f"{n:025d}"


def _account_rows(fixture: Fixture, start: int, stop: int) -> Iterator[tuple[object, ...]]:
    for n in range(start, stop):
        yield (fixture.account_id(n), f"Customer {n}", "prepaid", "EUR", 6, None, "{}", _time(0))


def _time(step: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_767_225_600 + step)) + ".000000Z"


def _rows(fixture: Fixture, start: int, stop: int) -> dict[str, list[tuple[object, ...]]]:
    per = fixture.entries_per_account
    rows: dict[str, list[tuple[object, ...]]] = {
        "accounts": list(_account_rows(fixture, start, stop)),
        "balances": [],
        "api_keys": [],
        "entries": [],
    }
    # Digests under the key secret the servers of this machine use (as bootstrap's default).
    hasher = key_hasher(Settings(database_url=fixture.url))
    for n in range(start, stop):
        account = fixture.account_id(n)
        last = _time(per)
        rows["balances"].append((account, "live", TOPUP_MINOR * per, per, 0, last))
        rows["balances"].append((account, "test", 0, 0, 0, None))
        digest = hasher.digest(fixture.key(n))
        rows["api_keys"].append(
            (f"key_{n:026d}", account, "live", digest, "…" + fixture.key(n)[-4:], _time(0), None)
        )
        for seq in range(1, per + 1):
            rows["entries"].append(
                (
                    f"ent_{n:017d}{seq:09d}",
                    account,
                    "live",
                    seq,
                    "topup",
                    TOPUP_MINOR,
                    TOPUP_MINOR * seq,
                    None,
                    "fixture",
                    "{}",
                    _time(seq),
                    None,
                )
            )
    return rows


_COLUMNS = {
    "accounts": "id, name, payment, asset, scale, credit_limit_minor, metadata, created_at",
    "balances": "account_id, mode, balance_minor, seq, held_minor, last_entry_at",
    "api_keys": "id, account_id, mode, key_hash, hint, created_at, revoked_at",
    "entries": "id, account_id, mode, seq, kind, amount_minor, balance_after_minor, refund_of,"
    " reference, metadata, created_at, hold_id",
}


def build(fixture: Fixture, progress: bool = True) -> None:
    """Migrate an empty database and fill it; no-op when it already holds the fixture."""
    store = open_store(Settings(database_url=fixture.url))
    try:
        if store.schema_version()[0] == 0:
            store.migrate()
        elif store.count_accounts() == fixture.accounts:
            return
        else:
            raise SystemExit(f"{fixture.url} holds other data: drop it first")
    finally:
        store.close()
    started = time.monotonic()
    if fixture.url.startswith("sqlite"):
        _fill_sqlite(fixture, Path(fixture.url.removeprefix("sqlite:///")), progress)
    else:
        _fill_postgres(fixture, progress)
    if progress:
        print(f"  built {fixture.accounts:,} accounts in {time.monotonic() - started:.0f} s")


def _chunks(fixture: Fixture) -> Iterator[tuple[int, dict[str, list[tuple[object, ...]]]]]:
    step = max(1, _CHUNK // max(1, fixture.entries_per_account))
    for start in range(0, fixture.accounts, step):
        yield start, _rows(fixture, start, min(fixture.accounts, start + step))


def _fill_sqlite(fixture: Fixture, path: Path, progress: bool) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    # Building a fixture, not serving: nothing needs to survive a crash mid-build.
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-512000")
    conn.execute("BEGIN")
    for start, rows in _chunks(fixture):
        for table, values in rows.items():
            marks = ", ".join("?" * len(values[0]))
            conn.executemany(f"INSERT INTO {table} ({_COLUMNS[table]}) VALUES ({marks})", values)
        if progress and start and start % 100_000 == 0:
            print(f"  {start:,} accounts", flush=True)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def _fill_postgres(fixture: Fixture, progress: bool) -> None:
    import psycopg

    with psycopg.connect(fixture.url, autocommit=True) as conn:
        for start, rows in _chunks(fixture):
            with conn.transaction(), conn.cursor() as cursor:
                for table, values in rows.items():
                    with cursor.copy(f"COPY {table} ({_COLUMNS[table]}) FROM STDIN") as copy:
                        for row in values:
                            copy.write_row(row)
            if progress and start and start % 100_000 == 0:
                print(f"  {start:,} accounts", flush=True)
        conn.execute("ANALYZE")
