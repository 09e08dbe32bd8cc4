"""Where events may be sent: the check of a subscription's URL (no I/O).

The text a subscription is created with is the text stored and the text the deliverer
sends to, so it is checked once, strictly, here, and checked again by the deliverer
before every attempt (a subscription stored by an older version may not pass; it is
dead-lettered with the reason instead of failing forever).

A target is an absolute ``http://`` or ``https://`` URL whose host is a DNS name or an
IP literal, or ``mailto:`` with one plain address. Only printable ASCII is allowed: no
whitespace, no control characters, no text the HTTP client would rewrite (an
internationalised host must be given in its ``xn--`` form, a path percent-encoded).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import SplitResult, urlsplit

from birdbalance.mail import is_address

MAX_URL_CHARS: Final = 2048
_PRINTABLE: Final = re.compile(r"[\x21-\x7e]+")
_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
MAX_HOST_CHARS: Final = 253


def target_problem(url: str) -> str | None:
    """Why ``url`` cannot be a subscription's target, or None when it can."""
    if not url or len(url) > MAX_URL_CHARS:
        return f"url must be 1 to {MAX_URL_CHARS} characters"
    if _PRINTABLE.fullmatch(url) is None:
        return (
            "url must be printable ASCII with no spaces or control characters"
            " (percent-encode the path; give an international host in its xn-- form)"
        )
    try:
        parts = urlsplit(url)
    except ValueError:
        return "url is not a valid URL"
    if parts.scheme == "mailto":
        if parts.query or parts.fragment or not is_address(parts.path):
            return "a mailto: URL takes one plain address"
        return None
    if parts.scheme not in ("http", "https"):
        return "url must be an absolute http:// or https:// URL, or mailto:address"
    return _http_problem(parts)


def _http_problem(parts: SplitResult) -> str | None:
    try:
        port = parts.port
    except ValueError:
        return "url has an invalid port"
    if port is not None and not 1 <= port <= 65535:
        return "url has an invalid port"
    host = parts.hostname
    if not host:
        return "url must name a host"
    if parts.netloc.rpartition("@")[2].startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return "url has an invalid IPv6 address"
        return None
    name = host[:-1] if host.endswith(".") else host
    if len(name) > MAX_HOST_CHARS or not all(_LABEL.fullmatch(p) for p in name.split(".")):
        return "url's host must be a DNS name or an IP address"
    return None
