"""``birdbalance check``: a monitoring plugin for any MessageBird-compatible balance.

It follows the Monitoring Plugins development guidelines (Nagios, Icinga, Naemon, Sensu
and Zabbix's external checks run such plugins): one line of output,
``STATUS - text | perfdata``, and the exit code 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
Thresholds are ranges (:mod:`birdbalance.thresholds`): ``-w 20:`` warns below 20,
``-c @0:5`` is critical from 0 to 5; a bare number means "at least" (``-w 20`` is
``20:``). The performance data gives the value, both ranges and the minimum (0).

UNKNOWN means the check could not judge: the endpoint was unreachable or refused the
key, the answer was not a balance, or the account is postpaid (MessageBird reports a
postpaid account's ``amount`` as 0, which says nothing about how close it is to a limit).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import httpx

from birdbalance.client import Balance, Client
from birdbalance.endpoint import DEFAULT_BASE_URL
from birdbalance.errors import AuthenticationError, ClientError
from birdbalance.money import decimal_text
from birdbalance.thresholds import Range

#: Characters of a server's text (an error, a balance type) one line carries.
MAX_REASON_CHARS: Final = 200
MAX_TYPE_CHARS: Final = 40


class Status(enum.IntEnum):
    """A plugin's state, which is also its exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True, slots=True)
class Result:
    status: Status
    line: str


def judge(balance: Balance, warning: Range | Decimal, critical: Range | Decimal) -> Result:
    """The plugin's verdict on ``balance`` (pure: no I/O); a Decimal threshold is the
    range "at least that"."""
    warning, critical = _range(warning), _range(critical)
    if balance.payment != "prepaid":
        return Result(
            Status.UNKNOWN,
            f"BALANCE UNKNOWN - {plugin_text(balance.payment, MAX_TYPE_CHARS)} account: its"
            " amount is always 0, so there is no balance to check",
        )
    amount = decimal_text(balance.amount)
    # value;warn;crit;min;max: a prepaid balance never goes below 0, and has no maximum.
    perfdata = f"balance={amount};{warning.text};{critical.text};0;"
    kind = plugin_text(balance.type, MAX_TYPE_CHARS)
    if critical.alerts(balance.amount):
        status, why = Status.CRITICAL, f" ({critical.why()})"
    elif warning.alerts(balance.amount):
        status, why = Status.WARNING, f" ({warning.why()})"
    else:
        status, why = Status.OK, ""
    return Result(status, f"BALANCE {status.name} - {amount} {kind}{why} | {perfdata}")


def _range(threshold: Range | Decimal) -> Range:
    return threshold if isinstance(threshold, Range) else Range.at_least(threshold)


def check(
    access_key: str,
    warning: Range | Decimal,
    critical: Range | Decimal,
    *,
    base_url: str = DEFAULT_BASE_URL,
    timeout_s: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> Result:
    """Read the balance once (one retry on a transport failure or 5xx) and judge it."""
    try:
        with Client(
            access_key, base_url, timeout_s=timeout_s, max_retries=1, transport=transport
        ) as client:
            balance = client.balance()
    except AuthenticationError:
        return Result(Status.UNKNOWN, "BALANCE UNKNOWN - the access key was refused")
    except ClientError as exc:
        # The error's text names the failure, never the key.
        why = plugin_text(f"{type(exc).__name__}: {exc}", MAX_REASON_CHARS)
        return Result(Status.UNKNOWN, f"BALANCE UNKNOWN - {why}")
    except ValueError as exc:  # the client's own options (a key with spaces, a bad URL)
        return Result(Status.UNKNOWN, f"BALANCE UNKNOWN - {plugin_text(str(exc), 200)}")
    return judge(balance, warning, critical)


def plugin_text(text: str, max_chars: int) -> str:
    """Text fit for a plugin's one line: printable, no ``|`` (it starts the performance
    data), at most ``max_chars``."""
    clean = "".join(c if c.isprintable() and c != "|" else " " for c in text[: max_chars + 1])
    return clean if len(clean) <= max_chars else clean[: max_chars - 1] + "…"
