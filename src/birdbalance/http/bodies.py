"""Reading request bodies with a limit: the one place a body is read whole."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

from birdbalance.errors import BadRequest, PayloadTooLarge, RequestTimeout
from birdbalance.validation import is_digits


async def read_body(request: Request, max_bytes: int, timeout_s: float) -> bytes:
    """The whole body, refused past ``max_bytes`` (413) whether or not it says its length,
    or when it has not all arrived within ``timeout_s`` (408: a slow client holds nothing)."""
    assert max_bytes >= 1 and timeout_s > 0
    declared = request.headers.get("content-length")
    if declared is not None:
        if not is_digits(declared):
            raise BadRequest("Content-Length is not a number")
        if int(declared) > max_bytes:
            raise PayloadTooLarge(f"the request body exceeds {max_bytes} bytes")
    chunks = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                chunks += chunk
                if len(chunks) > max_bytes:
                    raise PayloadTooLarge(f"the request body exceeds {max_bytes} bytes")
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout_s:g} s") from None
    return bytes(chunks)
