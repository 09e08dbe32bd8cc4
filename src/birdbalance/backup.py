"""Online backup and restore of a SQLite database, each checked before it is trusted.

``backup`` copies the live database with SQLite's backup API (a consistent snapshot,
even while servers write), writes it to a temporary file beside the target and renames
it into place only after ``PRAGMA integrity_check`` and a full ledger ``verify`` of the
copy pass. ``restore`` runs the same checks on the backup before it touches the
database (opened read-only: the backup keeps its bytes), copies it, and migrates the
result, verifying it again only if a migration changed it. Each stage reports its
progress to a :data:`Progress` callback. PostgreSQL has its own tools
(``pg_dump``/``pg_restore``, or base backups with WAL archiving): docs/deploy.md.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from birdbalance.errors import BackupError
from birdbalance.settings import Settings
from birdbalance.storage.sqlite import SQLiteStore, path_from_url

#: Called as a stage advances: (stage, done, total), total 0 when it is not known. The
#: stages: "copy" (pages), "integrity" (unknown), "verify" (accounts).
Progress = Callable[[str, int, int], None]


def _silent(stage: str, done: int, total: int) -> None:
    pass


def _stage(progress: Progress, stage: str) -> Callable[[int, int], None]:
    """``progress`` for one stage: what the store's copy and ``verify`` report to."""
    return lambda done, total: progress(stage, done, total)


def _sqlite_path(settings: Settings) -> Path:
    if not settings.database_url.startswith("sqlite:"):
        raise BackupError(
            "backup and restore copy SQLite databases; for PostgreSQL use pg_dump and"
            " pg_restore (see docs/deploy.md)"
        )
    return path_from_url(settings.database_url)


def check_copy(path: Path, progress: Progress = _silent) -> tuple[int, int, int]:
    """Prove a database file sound: ``(schema version, accounts, entries)`` or raise."""
    progress("integrity", 0, 0)
    probe = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = probe.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a SQLite database ({exc})") from None
    finally:
        probe.close()
    if result != [("ok",)]:
        raise BackupError(f"{path} fails its integrity check: {result[:3]}")
    store = SQLiteStore(path, read_only=True)  # the copy stays as it is
    try:
        current, latest = store.schema_version()
        if not 1 <= current <= latest:
            raise BackupError(
                f"{path} has schema version {current}; this birdbalance reads 1 to {latest}"
            )
        problems = store.verify(_stage(progress, "verify")) if current == latest else []
        if problems:
            raise BackupError(f"{path} does not verify: {problems[:3]}")
        accounts, entries = store.counts()
    finally:
        store.close()
    return current, accounts, entries


def backup_sqlite(
    settings: Settings, destination: Path, *, overwrite: bool = False, progress: Progress = _silent
) -> str:
    """Back the database up to ``destination``; returns a one-line report."""
    source = _sqlite_path(settings)
    if not source.exists():
        raise BackupError(f"there is no database at {source}")
    if destination.exists() and not overwrite:
        raise BackupError(f"{destination} exists; pass --force to overwrite it")
    if destination.resolve() == source.resolve():
        raise BackupError("the backup must not be the database itself")
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    store = SQLiteStore(source, synchronous=settings.sqlite_synchronous)
    try:
        store.backup(partial, _stage(progress, "copy"))
        version, accounts, entries = check_copy(partial, progress)
        os.replace(partial, destination)
    finally:
        store.close()
        partial.unlink(missing_ok=True)
    return (
        f"backed up {accounts} accounts and {entries} entries (schema version {version})"
        f" to {destination}; integrity and ledger verified"
    )


def restore_sqlite(
    settings: Settings, backup: Path, *, replace_data: bool = False, progress: Progress = _silent
) -> str:
    """Replace the database's content with ``backup``; returns a one-line report.

    Stop the servers first: SQLite cannot tell a serving process that its file changed.
    """
    target_path = _sqlite_path(settings)
    version, accounts, entries = check_copy(backup, progress)
    store = SQLiteStore(target_path, synchronous=settings.sqlite_synchronous)
    try:
        current, _ = store.schema_version()
        if current and not replace_data:
            existing = store.count_accounts()
            if existing:
                raise BackupError(
                    f"{target_path} already holds {existing} accounts; pass --force to"
                    " replace them with the backup"
                )
        store.restore(backup, _stage(progress, "copy"))
        store.close()
        applied = store.migrate()
        # The copy is the backup page for page, verified above; only a migration changes
        # what it holds, and then it is verified again.
        problems = store.verify(_stage(progress, "verify")) if applied else []
    finally:
        store.close()
    if problems:
        raise BackupError(f"the restored database does not verify: {problems[:3]}")
    migrated = f"; migrated {', '.join(applied)}" if applied else ""
    return (
        f"restored {accounts} accounts and {entries} entries (schema version {version})"
        f" from {backup} into {target_path}{migrated}; ledger verified"
    )
