"""Reading request bodies with a limit: the one place a body is read whole."""

from __future__ import annotations

from starlette.requests import Request

from birdbalance.errors import BadRequest, PayloadTooLarge


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refused (413) past ``max_bytes`` whether or not it says its length."""
    assert max_bytes >= 1
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(declared) > max_bytes:
            raise PayloadTooLarge(f"the request body exceeds {max_bytes} bytes")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > max_bytes:
            raise PayloadTooLarge(f"the request body exceeds {max_bytes} bytes")
    return bytes(chunks)
