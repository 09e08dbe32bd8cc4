"""The Python reference: the least an ASGI app can do to answer ``GET /balance``.

It checks ``Authorization: AccessKey <key>`` against one key and answers MessageBird's
static balance, or a 401 errors body. It runs on granian with exactly the options
birdbalance uses (:func:`birdbalance.server.granian_options`), so the gap between the two
is what birdbalance itself costs: routing, the key digest, the database and rendering.

    python bench/raw_asgi.py PORT KEY
"""

from __future__ import annotations

import os
import sys
from typing import Any

BODY = b'{"payment":"prepaid","type":"euros","amount":103}'
UNAUTHORIZED = b'{"errors":[{"code":2,"description":"Request not allowed","parameter":null}]}'


def make_app(key: str) -> Any:
    """The raw ASGI app answering for ``key``."""
    expected = b"AccessKey " + key.encode("ascii")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        status, body = 401, UNAUTHORIZED
        for name, value in scope["headers"]:
            if name == b"authorization":
                if value == expected:
                    status, body = 200, BODY
                break
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def _load(*_: object) -> Any:
    # Runs in each granian worker process, which inherits the environment.
    return make_app(os.environ["RAW_ASGI_KEY"])


def main() -> None:
    from granian.server import Server

    from birdbalance.server import granian_options, raise_open_files_limit
    from birdbalance.settings import Settings

    port, key = int(sys.argv[1]), sys.argv[2]
    os.environ["RAW_ASGI_KEY"] = key  # the worker processes read it at import
    options = granian_options(Settings(port=port), raise_open_files_limit())
    Server("raw_asgi:make_app", **options).serve(target_loader=_load)


if __name__ == "__main__":
    main()
