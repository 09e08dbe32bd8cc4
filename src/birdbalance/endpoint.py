"""MessageBird's REST endpoint: where a client goes unless it is told otherwise.

Kept apart from :mod:`birdbalance.client` so that what only names the endpoint (the CLI's
``--base-url`` default) need not import the client and httpx."""

from typing import Final

DEFAULT_BASE_URL: Final = "https://rest.messagebird.com"
