"""The Dramatiq broker on Redis, shared by the web app (to enqueue) and the worker."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker


def configure_broker(redis_url: str) -> RedisBroker:
    # Prefetch 1 comes from the worker's settings; the broker only needs the URL.
    broker = RedisBroker(url=redis_url)
    dramatiq.set_broker(broker)
    return broker
