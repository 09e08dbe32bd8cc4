"""The operations of the admin API and the CLI (:class:`Service`), apart from the input
parsing they share (:mod:`.inputs`) and the exports they stream (:mod:`.exports`)."""

from birdbalance.service.inputs import MAX_ALERTS_PER_ACCOUNT, MAX_WEBHOOKS, fingerprint
from birdbalance.service.operations import Service

__all__ = ["MAX_ALERTS_PER_ACCOUNT", "MAX_WEBHOOKS", "Service", "fingerprint"]
