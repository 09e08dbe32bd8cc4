"""Settings from a TOML file (``birdbalance --config FILE``, or ``BIRDBALANCE_CONFIG``),
under the environment, and secrets from files.

The file takes the environment's names without the prefix, in lower case
(``port = 8000`` is ``BIRDBALANCE_PORT``; the mail settings also as a ``[smtp]`` table:
``host`` there is ``BIRDBALANCE_SMTP_HOST``). An environment variable always wins over
the file. A secret (the database URL, the admin token, the key and session secrets, the
Redis URL, the SMTP password) can instead be given as the path of a file that holds it,
``<name>_file`` in the file or ``BIRDBALANCE_<NAME>_FILE`` in the environment (Docker's
and systemd's credentials convention); giving a secret both ways is refused. An unknown
name, a value of the wrong type, an unreadable or oversized file: each is a
``SettingsError`` that names it, before anything starts.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from birdbalance.errors import SettingsError
from birdbalance.settings import (
    BOOL_SETTINGS,
    ENV_PREFIX,
    FLOAT_SETTINGS,
    INT_SETTINGS,
    LIST_SETTINGS,
    SECRET_SETTINGS,
    TEXT_SETTINGS,
    Settings,
)

#: The variable that names a config file when ``--config`` does not.
CONFIG_VARIABLE: Final = ENV_PREFIX + "CONFIG"
#: Largest config file read.
MAX_CONFIG_BYTES: Final = 1024 * 1024
#: Largest secret file read (a secret is a line; a URL with a password is short too).
MAX_SECRET_FILE_BYTES: Final = 64 * 1024
#: The mail settings (``BIRDBALANCE_SMTP_<NAME>``), also as the file's ``[smtp]`` table.
SMTP_SETTINGS: Final = (
    "host",
    "port",
    "security",
    "username",
    "password",
    "from",
    "ca_file",
    "timeout_s",
)
#: Every name a config file may set, and the kind of value it takes.
KNOWN: Final[dict[str, tuple[type, ...]]] = {
    **{name: (str,) for name in TEXT_SETTINGS},
    **{name: (int,) for name in INT_SETTINGS},
    **{name: (int, float) for name in FLOAT_SETTINGS},
    **{name: (list,) for name in LIST_SETTINGS},
    **{name: (bool,) for name in BOOL_SETTINGS},
    **{f"smtp_{name}": (str,) for name in SMTP_SETTINGS},
    "smtp_port": (int,),
    "smtp_timeout_s": (int, float),
    **{f"{name}_file": (str,) for name in SECRET_SETTINGS if name != "key_secret"},
}


def load_settings(config: str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``config`` (or the file ``BIRDBALANCE_CONFIG`` names), the
    environment over it, and secrets read from their files."""
    env = dict(os.environ if environ is None else environ)
    return Settings.from_env(environment(config, env))


def environment(config: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The ``BIRDBALANCE_*`` variables settings are read from: the config file's values
    (if any) as variables, the environment's over them, each secret's file read in."""
    path = config or environ.get(CONFIG_VARIABLE) or None
    merged = {} if path is None else file_variables(Path(path))
    env = {k: v for k, v in environ.items() if k != CONFIG_VARIABLE}
    for name in SECRET_SETTINGS:
        # A secret the environment gives either way replaces the file's, either way.
        variable = ENV_PREFIX + name.upper()
        if env.get(variable) or env.get(variable + "_FILE"):
            merged.pop(variable, None)
            merged.pop(variable + "_FILE", None)
    merged.update(env)
    for name in SECRET_SETTINGS:
        variable = ENV_PREFIX + name.upper()
        if name == "key_secret":
            continue  # BIRDBALANCE_KEY_SECRET_FILE is a setting of its own (key_secret.py)
        from_file = merged.pop(variable + "_FILE", None)
        if from_file is None:
            continue
        if merged.get(variable):
            raise SettingsError(f"{variable} and {variable}_FILE are both set: give one")
        merged[variable] = secret_file(Path(from_file), variable + "_FILE")
    return merged


def file_variables(path: Path) -> dict[str, str]:
    """A config file's settings as the variables they stand for."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise SettingsError(f"cannot read the config file {path}: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise SettingsError(f"the config file {path} is over {MAX_CONFIG_BYTES} bytes")
    try:
        document = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"the config file {path} is not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if key == "smtp" and isinstance(value, dict):
            flat.update({f"smtp_{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    variables: dict[str, str] = {}
    for key, value in flat.items():
        kinds = KNOWN.get(key)
        if kinds is None:
            raise SettingsError(f"the config file {path} sets {key!r}, which is no setting")
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            wanted = " or ".join(_KIND_NAMES[k] for k in kinds)
            raise SettingsError(f"the config file {path}: {key} must be {wanted}")
        variables[ENV_PREFIX + key.upper()] = _as_variable(key, value, path)
    return variables


_KIND_NAMES: Final = {str: "text", int: "an integer", float: "a number", list: "a list",
                      bool: "true or false"}  # fmt: skip


def _as_variable(key: str, value: Any, path: Path) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        if not all(isinstance(item, str) and "," not in item for item in value):
            raise SettingsError(f"the config file {path}: {key} must be a list of text")
        return ",".join(value)
    return str(value)


def secret_file(path: Path, variable: str) -> str:
    """A secret held by a file: its text without the final line break."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise SettingsError(f"{variable}: cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_SECRET_FILE_BYTES:
        raise SettingsError(f"{variable}: {path} is over {MAX_SECRET_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        raise SettingsError(f"{variable}: {path} is not UTF-8 text") from None
    if not text or "\n" in text:
        raise SettingsError(f"{variable}: {path} must hold the secret on one line")
    return text
