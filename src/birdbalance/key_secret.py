"""Where the server-side secret that access keys and admin tokens are stored under lives.

In order: ``BIRDBALANCE_KEY_SECRET`` (the value itself), ``BIRDBALANCE_KEY_SECRET_FILE``
(a file holding it), else ``key-secret`` in the user's data directory
(``~/.local/share/birdbalance/key-secret`` on Linux), made on first use with 43 random
characters (256 bits), readable by its owner only. One file per user rather than per
database, so a backup restored on the same machine works as it is. The secret is never in
the database: a copy of the database (a backup, a dump) cannot confirm a guessed key.

Every node of one database must use the same secret. The database keeps an HMAC of a
constant under it (``server_meta.key_secret_check``), so a node started with another
secret refuses to start instead of answering 401 to every key.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Final

import platformdirs

from birdbalance.errors import SettingsError
from birdbalance.keys import MIN_SECRET_BYTES, KeyHasher
from birdbalance.settings import Settings

#: A secret file larger than this is not a secret file.
_MAX_FILE_BYTES: Final = 4096


def default_secret_path() -> Path:
    """The file a secret is made in when none is configured."""
    return Path(platformdirs.user_data_dir("birdbalance")) / "key-secret"


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise SettingsError(f"{path} is too large to be a key secret")
        value = path.read_bytes().strip()
    except OSError as exc:
        raise SettingsError(f"cannot read the key secret from {path}: {exc.strerror}") from None
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        raise SettingsError(f"the key secret in {path} is not UTF-8 text") from None
    if len(value) < MIN_SECRET_BYTES:
        raise SettingsError(f"the key secret in {path} is shorter than {MIN_SECRET_BYTES} bytes")
    return value


def _make(path: Path) -> bytes:
    """Create ``path`` with a new secret, unless another process got there first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".key-secret-")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # link() fails if the file exists: two processes starting at once keep one secret.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return _read(path)


def load_key_secret(settings: Settings) -> bytes:
    """The secret for ``settings``, making its file on first use if none is configured."""
    if settings.key_secret is not None:
        return settings.key_secret.encode("utf-8")
    if settings.key_secret_file is not None:
        return _read(Path(settings.key_secret_file))
    path = default_secret_path()
    if path.exists():
        return _read(path)
    try:
        return _make(path)
    except OSError as exc:
        raise SettingsError(
            f"cannot create the key secret file {path} ({exc.strerror}): set"
            " BIRDBALANCE_KEY_SECRET or BIRDBALANCE_KEY_SECRET_FILE"
        ) from None


def key_hasher(settings: Settings) -> KeyHasher:
    """The hasher of access keys and admin tokens for ``settings``."""
    return KeyHasher(load_key_secret(settings))
