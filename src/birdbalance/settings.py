"""Settings, read once from the environment and passed down (never a global)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import platformdirs

from birdbalance.errors import MailError, SettingsError
from birdbalance.mail import SMTPSettings

ENV_PREFIX: Final = "BIRDBALANCE_"
#: Most ``GET /balance`` answers one process may cache (about 300 bytes each).
MAX_BALANCE_CACHE: Final = 100_000
#: Most ledgers ``GET /metrics`` reports a balance gauge for.
MAX_LEDGER_GAUGES: Final = 2000


#: The settings ``BIRDBALANCE_<NAME>`` sets, by how they are read (a config file takes the
#: same names, see :mod:`birdbalance.config`).
TEXT_SETTINGS: Final = (
    "database_url",
    "admin_token",
    "key_secret",
    "key_secret_file",
    "redis_url",
    "session_secret",
    "host",
    "sqlite_synchronous",
)
INT_SETTINGS: Final = (
    "balance_cache_size",
    "port",
    "workers",
    "sqlite_busy_timeout_ms",
    "max_body_bytes",
    "database_pool_size",
    "webhook_max_attempts",
    "metrics_ledger_gauges",
    "session_lifetime_s",
    "rate_limit_per_key",
    "rate_limit_per_address",
    "auth_failures_per_address",
    "auth_failure_window_s",
)
FLOAT_SETTINGS: Final = (
    "request_timeout_s",
    "database_timeout_s",
    "hold_sweep_interval_s",
    "webhook_timeout_s",
    "webhook_retry_base_s",
    "webhook_retry_cap_s",
    "webhook_poll_interval_s",
    "redis_timeout_s",
)
#: A comma-separated list, and a boolean.
LIST_SETTINGS: Final = ("trusted_proxies",)
BOOL_SETTINGS: Final = ("secure_cookies",)
#: Settings that may hold a secret: each can be given as ``BIRDBALANCE_<NAME>_FILE``.
SECRET_SETTINGS: Final = ("database_url", "admin_token", "key_secret", "session_secret",
                          "redis_url", "smtp_password")  # fmt: skip


def default_database_url() -> str:
    """A SQLite file in the user's data directory (``~/.local/share/birdbalance`` on Linux)."""
    path = Path(platformdirs.user_data_dir("birdbalance")) / "birdbalance.db"
    return f"sqlite:///{path}"


def redacted_url(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service needs to know, with safe defaults.

    Every field can be set from ``BIRDBALANCE_<FIELD>`` (upper case); the CLI's flags
    override the environment.
    """

    #: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
    #: ``postgresql://user:password@host:5432/dbname``.
    database_url: str = field(default_factory=default_database_url)
    #: PostgreSQL: connections per process (half of them may write at once).
    database_pool_size: int = 10
    #: PostgreSQL: the longest wait for a connection, a lock or a statement before 503.
    database_timeout_s: float = 5.0
    #: How often each process expires holds that are due.
    hold_sweep_interval_s: float = 1.0
    #: How long one webhook delivery attempt may take.
    webhook_timeout_s: float = 5.0
    #: Retry backoff of failed deliveries: full jitter, doubling from base up to cap.
    webhook_retry_base_s: float = 1.0
    webhook_retry_cap_s: float = 3600.0
    #: Attempts before a delivery is dead-lettered.
    webhook_max_attempts: int = 16
    #: How often each process looks for due deliveries.
    webhook_poll_interval_s: float = 0.2
    #: Bearer token of the admin API under ``/v1/`` (read and write; the audit log names
    #: it ``admin-token``). Tokens with a scope are made with ``birdbalance tokens``.
    admin_token: str | None = field(default=None, repr=False)
    #: The server-side secret access keys and admin tokens are stored under (32+
    #: characters), or a file holding it; neither: a file made on first use (see
    #: :mod:`birdbalance.key_secret`). Every node of a database needs the same one.
    key_secret: str | None = field(default=None, repr=False)
    key_secret_file: str | None = None
    #: Proxies (addresses or CIDR networks) whose ``X-Forwarded-For`` names the client,
    #: for rate limits and the audit log; empty: the peer address is the client.
    trusted_proxies: tuple[str, ...] = ()
    #: Requests per second one credential (access key or admin token) may make; 0: no limit.
    rate_limit_per_key: int = 0
    #: Requests per second one client address may make; 0: no limit.
    rate_limit_per_address: int = 0
    #: Failed authentications one address may make per window before it is throttled
    #: (credentials that already worked from that address still do).
    auth_failures_per_address: int = 50
    auth_failure_window_s: int = 60
    #: ``redis://host:6379/0``: rate limits shared by every node; None: per process.
    redis_url: str | None = None
    #: The longest one Redis round trip (or the wait for a pooled connection) may take
    #: before this process counts by itself for a few seconds.
    redis_timeout_s: float = 0.25
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    #: SQLite ``synchronous``: FULL fsyncs every commit (durable even on power loss).
    sqlite_synchronous: str = "FULL"
    #: How long a write waits for SQLite's write lock before failing.
    sqlite_busy_timeout_ms: int = 5000
    #: ``GET /balance`` answers kept per process while no commit happens (SQLite; 0: off).
    balance_cache_size: int = 10_000
    #: The longest a client may take to send a request's headers, or its body (408).
    request_timeout_s: float = 10.0
    #: Largest request body the admin API reads.
    max_body_bytes: int = 64 * 1024
    #: ``GET /metrics``: per-ledger balance gauges for the first N ledgers (0: none).
    metrics_ledger_gauges: int = 0
    #: Where the worker processes of one ``birdbalance serve`` add up their metrics (a
    #: directory that run makes and removes; not read from the environment). None: each
    #: app counts alone.
    metrics_dir: str | None = None
    #: Signs dashboard sessions (32+ characters). None: a random one per run of
    #: ``birdbalance serve``, shared by its workers, so sessions end when it restarts.
    session_secret: str | None = field(default=None, repr=False)
    #: How long a dashboard sign-in lasts.
    session_lifetime_s: int = 8 * 3600
    #: Mark the dashboard's cookies ``Secure`` (set it when users reach it over HTTPS).
    secure_cookies: bool = False
    #: Mail for ``mailto:`` subscriptions (``BIRDBALANCE_SMTP_*``); None: not configured.
    smtp: SMTPSettings | None = None
    #: Whether the database URL came from the environment/flags (False: the embedded default).
    database_url_explicit: bool = False

    def __post_init__(self) -> None:
        if self.sqlite_synchronous.upper() not in {"FULL", "EXTRA", "NORMAL"}:
            raise SettingsError("sqlite_synchronous must be FULL, EXTRA or NORMAL")
        if not 1 <= self.port <= 65535:
            raise SettingsError("port must be 1..65535")
        if not 1 <= self.workers <= 64:
            raise SettingsError("workers must be 1..64")
        if not 1024 <= self.max_body_bytes <= 16 * 1024 * 1024:
            raise SettingsError("max_body_bytes must be 1 KiB..16 MiB")
        if not 0 <= self.balance_cache_size <= MAX_BALANCE_CACHE:
            raise SettingsError(f"balance_cache_size must be 0..{MAX_BALANCE_CACHE}")
        if not 0 <= self.metrics_ledger_gauges <= MAX_LEDGER_GAUGES:
            raise SettingsError(f"metrics_ledger_gauges must be 0..{MAX_LEDGER_GAUGES}")
        if not 2 <= self.database_pool_size <= 200:
            raise SettingsError("database_pool_size must be 2..200")
        if not 0.5 <= self.request_timeout_s <= 300:
            raise SettingsError("request_timeout_s must be 0.5..300")
        if not 0.1 <= self.database_timeout_s <= 300:
            raise SettingsError("database_timeout_s must be 0.1..300")
        if not 0.05 <= self.hold_sweep_interval_s <= 3600:
            raise SettingsError("hold_sweep_interval_s must be 0.05..3600")
        if not 0.1 <= self.webhook_timeout_s <= 60:
            raise SettingsError("webhook_timeout_s must be 0.1..60")
        if not 0.01 <= self.webhook_retry_base_s <= self.webhook_retry_cap_s <= 86400:
            raise SettingsError("need 0.01 <= webhook_retry_base_s <= webhook_retry_cap_s <= 86400")
        if not 1 <= self.webhook_max_attempts <= 100:
            raise SettingsError("webhook_max_attempts must be 1..100")
        if not 0.01 <= self.webhook_poll_interval_s <= 60:
            raise SettingsError("webhook_poll_interval_s must be 0.01..60")
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise SettingsError("the admin token must have at least 16 characters")
        if self.key_secret is not None and len(self.key_secret.encode("utf-8")) < 32:
            raise SettingsError("the key secret must have at least 32 characters")
        if self.session_secret is not None and len(self.session_secret) < 32:
            raise SettingsError("the session secret must have at least 32 characters")
        if not 0 <= self.rate_limit_per_key <= 1_000_000:
            raise SettingsError("rate_limit_per_key must be 0..1000000")
        if not 0 <= self.rate_limit_per_address <= 1_000_000:
            raise SettingsError("rate_limit_per_address must be 0..1000000")
        if not 1 <= self.auth_failures_per_address <= 100_000:
            raise SettingsError("auth_failures_per_address must be 1..100000")
        if not 1 <= self.auth_failure_window_s <= 86400:
            raise SettingsError("auth_failure_window_s must be 1..86400")
        if len(self.trusted_proxies) > 100:
            raise SettingsError("at most 100 trusted proxies")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise SettingsError(
                    f"trusted proxy {proxy!r} is not an address or network"
                ) from None
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise SettingsError("redis_url must start with redis://, rediss:// or unix://")
        if not 0.01 <= self.redis_timeout_s <= 10:
            raise SettingsError("redis_timeout_s must be 0.01..10")
        if not 60 <= self.session_lifetime_s <= 30 * 24 * 3600:
            raise SettingsError("session_lifetime_s must be 60..2592000 (30 days)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``BIRDBALANCE_*`` variables (``os.environ`` by default)."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(ENV_PREFIX + name.upper())
            return value if value not in (None, "") else None

        values: dict[str, object] = {}
        for name in TEXT_SETTINGS:
            if (value := get(name)) is not None:
                values[name] = value
        for name in INT_SETTINGS:
            if (value := get(name)) is not None:
                try:
                    values[name] = int(value)
                except ValueError:
                    raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be an integer") from None
        for name in FLOAT_SETTINGS:
            if (value := get(name)) is not None:
                try:
                    values[name] = float(value)
                except ValueError:
                    raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be a number") from None
        if (value := get("trusted_proxies")) is not None:
            values["trusted_proxies"] = tuple(p.strip() for p in value.split(",") if p.strip())
        if (value := get("secure_cookies")) is not None:
            if value.lower() not in {"1", "true", "yes", "0", "false", "no"}:
                raise SettingsError(f"{ENV_PREFIX}SECURE_COOKIES must be true or false")
            values["secure_cookies"] = value.lower() in {"1", "true", "yes"}
        try:
            values["smtp"] = SMTPSettings.from_env(env)
        except MailError as exc:
            raise SettingsError(str(exc)) from None
        values["database_url_explicit"] = "database_url" in values
        return cls(**values)  # type: ignore[arg-type]

    def with_overrides(self, **changes: object) -> Settings:
        """A copy with the non-None ``changes`` applied (used for CLI flags)."""
        applied = {k: v for k, v in changes.items() if v is not None}
        if "database_url" in applied:
            applied["database_url_explicit"] = True
        return replace(self, **applied)  # type: ignore[arg-type]
