"""Events by email: SMTP with TLS (implicit or STARTTLS) and authentication.

Used by the server for ``mailto:`` subscriptions (same outbox, retries and dead letters
as webhooks) and by ``birdbalance watch --email``. Settings come from
``BIRDBALANCE_SMTP_*`` (see :meth:`SMTPSettings.from_env`). Certificates are verified
against the system's CAs (or ``BIRDBALANCE_SMTP_CA_FILE``), and credentials are never
sent over a connection that is not encrypted, except to a loopback relay.

Each message carries the event's JSON as its body, its id in ``Message-ID`` (so mail
systems drop the copy a retry may send) and the same ``Birdbalance-Signature`` as a
webhook, computed over that JSON, for receivers that process mail automatically.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Final

from birdbalance.errors import MailError
from birdbalance.webhooks import SIGNATURE_HEADER, sign

SECURITY_MODES: Final = ("starttls", "tls", "none")
#: One plain address: no display name, no list, nothing that could add a header.
_ADDRESS: Final = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}")
MAX_RECIPIENTS: Final = 20
ENV_PREFIX: Final = "BIRDBALANCE_SMTP_"


def is_address(text: str) -> bool:
    return _ADDRESS.fullmatch(text) is not None and ".." not in text


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SMTPSettings:
    """Where and how to send mail."""

    host: str
    sender: str
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise MailError(f"{ENV_PREFIX}SECURITY must be one of {', '.join(SECURITY_MODES)}")
        if not 1 <= self.port <= 65535:
            raise MailError(f"{ENV_PREFIX}PORT must be 1..65535")
        if not is_address(self.sender):
            raise MailError(f"{ENV_PREFIX}FROM must be one plain address")
        if (self.username is None) != (self.password is None):
            raise MailError(f"set both {ENV_PREFIX}USERNAME and {ENV_PREFIX}PASSWORD, or neither")
        if self.security == "none" and self.username and not _is_loopback(self.host):
            raise MailError("refusing to send SMTP credentials unencrypted; use starttls or tls")
        if not 0.1 <= self.timeout_s <= 120:
            raise MailError(f"{ENV_PREFIX}TIMEOUT_S must be 0.1..120")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SMTPSettings | None:
        """From ``BIRDBALANCE_SMTP_HOST``, ``_PORT``, ``_SECURITY``, ``_USERNAME``,
        ``_PASSWORD``, ``_FROM``, ``_CA_FILE``, ``_TIMEOUT_S``; None without a host."""

        def get(name: str) -> str | None:
            value = environ.get(ENV_PREFIX + name)
            return value if value else None

        host = get("HOST")
        if host is None:
            return None
        security = (get("SECURITY") or "starttls").lower()
        default_port = {"starttls": 587, "tls": 465, "none": 25}.get(security, 587)
        try:
            port = int(get("PORT") or default_port)
            timeout_s = float(get("TIMEOUT_S") or 10.0)
        except ValueError:
            raise MailError(f"{ENV_PREFIX}PORT and _TIMEOUT_S must be numbers") from None
        sender = get("FROM")
        if sender is None:
            raise MailError(f"set {ENV_PREFIX}FROM, the address mail comes from")
        return cls(
            host=host,
            sender=sender,
            port=port,
            security=security,
            username=get("USERNAME"),
            password=get("PASSWORD"),
            ca_file=get("CA_FILE"),
            timeout_s=timeout_s,
        )


def _subject(event: Mapping[str, Any]) -> str:
    data = event.get("data", {})
    what = f"{data.get('available', '?')} {data.get('type', '')}".strip()
    line = f" (threshold {data['threshold']})" if "threshold" in data else ""
    where = data.get("account_id") or data.get("source") or ""
    return f"[birdbalance] {event['type']}: {what}{line} {where}".strip()[:200]


def event_message(
    event: Mapping[str, Any], body: bytes, sender: str, to: Sequence[str], secret: str | None
) -> EmailMessage:
    """The message for one event (``body`` is the event's exact JSON)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = _subject(event)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{event['id']}@birdbalance>"
    message["Birdbalance-Event-Id"] = str(event["id"])
    if secret is not None:
        message[SIGNATURE_HEADER] = sign(body, secret)
    pretty = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    message.set_content(
        f"{_subject(event)}\n\nThe event, exactly as signed (the JSON below, compact):\n\n"
        f"{body.decode('utf-8')}\n\nReadable:\n\n{pretty}\n"
    )
    return message


def send(
    settings: SMTPSettings,
    message: EmailMessage,
    to: Sequence[str],
    *,
    deadline_s: float | None = None,
) -> None:
    """Send ``message`` (blocking: call it from a thread). Raises ``OSError`` subclasses.

    ``deadline_s`` bounds the whole conversation, not each read: a server that trickles
    its answers has its connection shut when the deadline passes, which ends the send.
    """
    assert 1 <= len(to) <= MAX_RECIPIENTS and all(is_address(a) for a in to)
    context = ssl.create_default_context(cafile=settings.ca_file)
    smtp: smtplib.SMTP
    # Made unconnected, so the deadline also covers the server's greeting.
    if settings.security == "tls":
        smtp = smtplib.SMTP_SSL(timeout=settings.timeout_s, context=context)
    else:
        smtp = smtplib.SMTP(timeout=settings.timeout_s)
    # The name TLS verifies (STARTTLS and implicit TLS alike); smtplib only sets it from
    # the constructor's host, which would connect before the deadline starts.
    smtp._host = settings.host  # type: ignore[attr-defined]
    expired = threading.Event()
    watchdog = None
    if deadline_s is not None:
        watchdog = threading.Timer(deadline_s, _shut, (smtp, expired))
        watchdog.daemon = True
        watchdog.start()
    try:
        smtp.connect(settings.host, settings.port)
    except (smtplib.SMTPException, OSError) as exc:
        if watchdog is not None:
            watchdog.cancel()
        smtp.close()
        raise OSError(f"SMTP: {exc}") from None
    try:
        if expired.is_set():
            raise OSError(f"SMTP: no complete conversation within {deadline_s:g} s")
        smtp.ehlo()
        if settings.security == "starttls":
            smtp.starttls(context=context)
            smtp.ehlo()
        if settings.username is not None and settings.password is not None:
            smtp.login(settings.username, settings.password)
        smtp.send_message(message, from_addr=settings.sender, to_addrs=list(to))
    except smtplib.SMTPException as exc:
        raise OSError(f"SMTP: {exc}") from None
    finally:
        # QUIT inside the deadline too: a server could trickle its goodbye.
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
        if watchdog is not None:
            watchdog.cancel()


def _shut(smtp: smtplib.SMTP, expired: threading.Event) -> None:
    # Shutting the socket (not closing it) wakes the thread blocked reading from it.
    expired.set()
    sock = smtp.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
