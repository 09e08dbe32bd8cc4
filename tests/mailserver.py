"""A real SMTP server on 127.0.0.1 (aiosmtpd): STARTTLS or implicit TLS, with AUTH."""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.servers import free_port

USERNAME = "birdbalance"
PASSWORD = "smtp-password-0123456789"


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    authenticated: bool


class MailServer:
    """Records every message; ``security`` is ``starttls`` or ``tls``."""

    def __init__(self, folder: Path, security: str = "starttls") -> None:
        ca = trustme.CA()
        self.ca_file = folder / "smtp-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self._context)
        self.security = security
        self.port = free_port()
        self.received: list[Mail] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    def env(self) -> dict[str, str]:
        """The ``BIRDBALANCE_SMTP_*`` settings that reach this server."""
        return {
            "BIRDBALANCE_SMTP_HOST": "127.0.0.1",
            "BIRDBALANCE_SMTP_PORT": str(self.port),
            "BIRDBALANCE_SMTP_SECURITY": self.security,
            "BIRDBALANCE_SMTP_USERNAME": USERNAME,
            "BIRDBALANCE_SMTP_PASSWORD": PASSWORD,
            "BIRDBALANCE_SMTP_FROM": "alerts@birdbalance.test",
            "BIRDBALANCE_SMTP_CA_FILE": str(self.ca_file),
            "BIRDBALANCE_SMTP_TIMEOUT_S": "5",
        }

    def start(self) -> MailServer:
        server = self

        class Handler:
            async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
                parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                with server._lock:
                    server.received.append(
                        Mail(
                            envelope.mail_from,
                            list(envelope.rcpt_tos),
                            parsed,
                            # STARTTLS sets session.ssl; implicit TLS shows on the transport.
                            session.ssl is not None
                            or smtp.transport.get_extra_info("ssl_object") is not None,
                            session.authenticated,
                        )
                    )
                return "250 OK"

        def authenticate(
            smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
                USERNAME.encode(),
                PASSWORD.encode(),
            )
            return AuthResult(success=ok)

        options: dict[str, Any] = {
            "authenticator": authenticate,
            "auth_required": True,
            "auth_require_tls": True,
        }
        if self.security == "tls":
            options["ssl_context"] = self._context
            # aiosmtpd's "AUTH needs TLS" check only knows STARTTLS (and warns without it),
            # though this connection is TLS from the start: AUTH stays offered and
            # checked, just not demanded; the tests assert every mail was authenticated.
            options["auth_require_tls"] = False
            options["auth_required"] = False
        else:
            options["tls_context"] = self._context
            options["require_starttls"] = True
        self._controller = Controller(
            Handler(), hostname="127.0.0.1", port=self.port, server_hostname="127.0.0.1", **options
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout_s: float = 20) -> list[Mail]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"only {len(self.received)} messages arrived")
