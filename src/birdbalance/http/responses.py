"""JSON responses in MessageBird's shapes, for raw ASGI and Starlette alike."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Final

import msgspec
from starlette.responses import Response, StreamingResponse

from birdbalance.errors import ServiceError, Unauthorized
from birdbalance.shapes import render as render_shape

JSON_CONTENT_TYPE: Final = b"application/json"


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def error_bytes(error: ServiceError) -> bytes:
    # ASCII with escapes: an error may quote text that cannot be encoded (a refused
    # lone surrogate), and its answer must still be sent.
    return json.dumps(error.to_body(), separators=(",", ":")).encode("ascii")


#: The one 401 body, byte-identical for a missing, malformed, unknown or revoked key.
UNAUTHORIZED_BODY: Final = error_bytes(Unauthorized(parameter="access_key"))


class JSONBody(Response):
    """A Starlette response whose content is compact UTF-8 JSON: a shape
    (:mod:`birdbalance.shapes`), rendered, or plain JSON values."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        if isinstance(content, msgspec.Struct):
            content = render_shape(content)
        return dumps(content)


def csv_download(
    name: str, chunks: Iterator[str], headers: dict[str, str] | None = None
) -> StreamingResponse:
    """A CSV file sent as it is made (``chunks`` run in a thread, not on the loop)."""
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', **(headers or {})},
    )


def error_response(error: ServiceError, headers: dict[str, str] | None = None) -> Response:
    return Response(
        error_bytes(error),
        status_code=error.status_code,
        headers=headers,
        media_type="application/json",
    )
