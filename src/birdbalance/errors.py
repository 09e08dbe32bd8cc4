"""Every exception birdbalance raises, in one tree.

::

    BirdbalanceError
    ├── ServiceError                 raised by the service; rendered as MessageBird's errors body
    │   ├── Unauthorized             401, code 2
    │   ├── Forbidden                403, code 2 (a token whose scope does not allow it)
    │   ├── TooManyRequests          429, code 29 (with Retry-After)
    │   ├── BadRequest               400, code 21
    │   │   ├── PayloadTooLarge      413, code 21
    │   │   └── RequestTimeout       408, code 21
    │   ├── NotFound                 404, code 20
    │   ├── MethodNotAllowed         405, code 21
    │   ├── MissingParameter         422, code 9
    │   ├── InvalidParameter         422, code 10
    │   │   ├── IdempotencyConflict  409, code 10 (parameter Idempotency-Key)
    │   │   ├── StateConflict        409, code 10 (a hold that is no longer pending)
    │   │   └── LinkedOperationFailed  409, code 10 (a bulk operation whose linked group failed)
    │   ├── NotEnoughBalance         422, code 25
    │   ├── ServiceUnavailable       503, code 99 (the database is busy or down; retry)
    │   ├── SchemaOutOfDate          500, code 99
    │   ├── KeySecretMismatch        500, code 99 (this node's key secret is not the database's)
    │   └── InternalError            500, code 99
    ├── ClientError                  raised by birdbalance.Client / AsyncClient
    │   ├── TransportError           no answer (connection refused, reset, DNS) after retries
    │   │   └── Timeout              no answer within the timeout after retries
    │   ├── ResponseError            an answer that is not MessageBird's shape
    │   ├── WebhookSignatureError    verify_webhook: bad, missing or stale signature
    │   └── APIError                 an answer carrying an errors body; .status_code, .errors
    │       ├── AuthenticationError  401
    │       ├── NotFoundError        404
    │       ├── ConflictError        409
    │       ├── ValidationError      422 (except code 25)
    │       │   └── NotEnoughBalanceError  422 with code 25
    │       └── ServerError          5xx
    ├── SettingsError                a setting that cannot be used (at start-up, never a request)
    │   ├── MailError                BIRDBALANCE_SMTP_* settings
    │   └── BackupError              a backup or restore that cannot be done as asked
    ├── InvalidValue                 a text that is not the value it must be (pure parsers)
    │   ├── AmountError              not a decimal amount within bounds
    │   ├── AssetError               neither credits nor a known currency
    │   ├── TimestampError           not an RFC 3339 time with an offset
    │   ├── DateError                not YYYY-MM-DD
    │   └── RangeError               not a monitoring plugin's threshold range
    ├── WatchError                   birdbalance watch cannot go on (state file, rule, reading)
    └── CLIError                     the CLI's error line on stderr; exit status 1
        └── CLIUsageError            a configuration or usage error; exit status 2

Service errors carry their HTTP status and MessageBird error code as class attributes;
one handler in the HTTP layer turns them into ``{"errors":[...]}`` bodies. The service
turns an :class:`InvalidValue` from a parser into :class:`InvalidParameter` naming the
field. :class:`SettingsError` is raised before anything serves (the CLI exits 2 on it),
never in answer to a request. The CLI's own errors are defined with the CLI
(:mod:`birdbalance.cli`) and sit under the root too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


class BirdbalanceError(Exception):
    """Root of every birdbalance exception."""


# --------------------------------------------------------------------------- service side


class ServiceError(BirdbalanceError):
    """An error with a MessageBird error ``code``, an HTTP status and an optional parameter."""

    status_code: ClassVar[int] = 500
    code: ClassVar[int] = 99
    default_description: ClassVar[str] = "Internal error"

    def __init__(self, description: str | None = None, parameter: str | None = None) -> None:
        self.description = description or self.default_description
        self.parameter = parameter
        super().__init__(self.description)

    def to_body(self) -> dict[str, Any]:
        """The MessageBird errors body for this error."""
        return {
            "errors": [
                {"code": self.code, "description": self.description, "parameter": self.parameter}
            ]
        }


class Unauthorized(ServiceError):
    status_code = 401
    code = 2
    default_description = "Request not allowed (incorrect access_key)"


class Forbidden(ServiceError):
    """The credential is valid but its scope does not allow the request."""

    status_code = 403
    code = 2
    default_description = "This token may not do that"


class TooManyRequests(ServiceError):
    """A rate limit: the answer carries ``Retry-After`` (:attr:`retry_after_s`)."""

    status_code = 429
    code = 29
    default_description = "Too many requests, slow down"

    def __init__(self, retry_after_s: int, description: str | None = None) -> None:
        assert retry_after_s >= 1
        self.retry_after_s = retry_after_s
        super().__init__(description)


class BadRequest(ServiceError):
    status_code = 400
    code = 21
    default_description = "Bad request"


class PayloadTooLarge(BadRequest):
    status_code = 413
    default_description = "Request body too large"


class RequestTimeout(BadRequest):
    status_code = 408
    default_description = "The request did not arrive in time"


class NotFound(ServiceError):
    status_code = 404
    code = 20
    default_description = "Not found"


class MethodNotAllowed(ServiceError):
    status_code = 405
    code = 21
    default_description = "Method not allowed"


class MissingParameter(ServiceError):
    status_code = 422
    code = 9
    default_description = "Missing parameter"


class InvalidParameter(ServiceError):
    status_code = 422
    code = 10
    default_description = "Invalid parameter"


class IdempotencyConflict(InvalidParameter):
    status_code = 409
    default_description = "Idempotency-Key was already used with a different request"

    def __init__(self, description: str | None = None, parameter: str | None = None) -> None:
        super().__init__(description, parameter or "Idempotency-Key")


class StateConflict(InvalidParameter):
    """The resource is no longer in a state that allows the request (a resolved hold)."""

    status_code = 409
    default_description = "The resource is not in a state that allows this request"


class LinkedOperationFailed(InvalidParameter):
    """A bulk operation not applied because another in its linked group was refused."""

    status_code = 409


class NotEnoughBalance(ServiceError):
    status_code = 422
    code = 25
    default_description = "Not enough balance"


class ServiceUnavailable(ServiceError):
    """Retryable: the answer carries ``Retry-After`` (:attr:`retry_after_s`)."""

    status_code = 503
    default_description = "Service temporarily unavailable, try again"

    def __init__(
        self,
        description: str | None = None,
        parameter: str | None = None,
        *,
        retry_after_s: int = 1,
    ) -> None:
        assert retry_after_s >= 1
        self.retry_after_s = retry_after_s
        super().__init__(description, parameter)


class KeySecretMismatch(ServiceError):
    """This process's key secret is not the one the database's keys are stored under."""

    default_description = (
        "BIRDBALANCE_KEY_SECRET differs from the secret this database's keys are stored"
        " under: every node needs the same one"
    )


class SchemaOutOfDate(ServiceError):
    default_description = "Database schema is out of date: run `birdbalance migrate`"


class InternalError(ServiceError):
    pass


# --------------------------------------------------------------------------- client side


class ClientError(BirdbalanceError):
    """Raised by :class:`birdbalance.Client` and :class:`birdbalance.AsyncClient`."""


class TransportError(ClientError):
    """The server could not be reached (after the configured retries)."""


class Timeout(TransportError):
    """The server did not answer within the timeout (after the configured retries)."""


class ResponseError(ClientError):
    """The server answered with something that is not MessageBird's JSON shape."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class WebhookSignatureError(ClientError):
    """A webhook delivery whose signature is missing, wrong, or outside the tolerance."""


# --------------------------------------------------------------------------- start-up


class SettingsError(BirdbalanceError, ValueError):
    """A setting has a value that cannot be used (found at start-up, before serving)."""


class MailError(SettingsError):
    """Mail settings (``BIRDBALANCE_SMTP_*``) or an address that cannot be used."""


class BackupError(SettingsError):
    """A backup or restore that cannot be done as asked; nothing was changed."""


# --------------------------------------------------------------------------- values


class InvalidValue(BirdbalanceError, ValueError):
    """A text that is not the value it must be; ``str()`` says why."""


class AmountError(InvalidValue):
    """A decimal text that is not a valid amount; ``str()`` says why."""


class AssetError(InvalidValue):
    """A balance type that is neither ``credits`` nor a known currency."""


class TimestampError(InvalidValue):
    """Not an RFC 3339 time with a date, a time and an offset."""


class DateError(InvalidValue):
    """A date field that is not ``YYYY-MM-DD``."""


class RangeError(InvalidValue):
    """Not a threshold range (``20:``, ``~:10``, ``@10:20``; see :mod:`birdbalance.thresholds`)."""


# --------------------------------------------------------------------------- tools


class WatchError(BirdbalanceError):
    """``birdbalance watch`` cannot go on (a state file, a rule), or skips a reading."""


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One element of MessageBird's ``errors`` array."""

    code: int
    description: str
    parameter: str | None


class APIError(ClientError):
    """The server answered with an ``errors`` body; ``.errors`` holds every element."""

    def __init__(self, status_code: int, errors: tuple[ErrorDetail, ...]) -> None:
        self.status_code = status_code
        self.errors = errors
        text = "; ".join(
            f"{e.description} (code {e.code}"
            + (f", parameter {e.parameter})" if e.parameter else ")")
            for e in errors
        )
        super().__init__(f"HTTP {status_code}: {text}")


class AuthenticationError(APIError):
    """401: the access key is missing, unknown or revoked."""


class NotFoundError(APIError):
    """404."""


class ConflictError(APIError):
    """409, for example an ``Idempotency-Key`` reused with another request."""


class ValidationError(APIError):
    """422: a parameter is missing or invalid."""


class NotEnoughBalanceError(ValidationError):
    """422 with code 25: the balance (or credit limit) does not cover the request."""


class ServerError(APIError):
    """5xx."""
