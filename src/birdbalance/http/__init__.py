"""The HTTP layer: a raw-ASGI ``/balance`` hot path in front of the Starlette admin app."""

from birdbalance.http.app import create_app

__all__ = ["create_app"]
