"""Send run messages from the web app, by actor name (the web app does not import the
worker's actors). Messages carry ids only, and are sent after the commit."""

from __future__ import annotations

import dramatiq
from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker

QUEUE = "evaluation"
RUN_ACTOR = "run_evaluation"


def create_broker(redis_url: str) -> RedisBroker:
    broker = RedisBroker(url=redis_url)
    broker.declare_queue(QUEUE)
    return broker


def enqueue_runs(broker: Broker, run_ids: list[int]) -> None:
    for run_id in run_ids:
        broker.enqueue(
            dramatiq.Message(
                queue_name=QUEUE, actor_name=RUN_ACTOR, args=(run_id,), kwargs={}, options={}
            )
        )


def enqueue_leaderboard_refresh(broker: Broker, delay_ms: int) -> None:
    from portal.leaderboard.refresh import REFRESH_ACTOR

    broker.enqueue(
        dramatiq.Message(
            queue_name=QUEUE, actor_name=REFRESH_ACTOR, args=(), kwargs={}, options={}
        ),
        delay=delay_ms,
    )
