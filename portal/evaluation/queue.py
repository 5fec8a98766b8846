"""Send run messages from the web app, by actor name (the web app does not import the
worker's actors). Messages carry ids only, and are sent after the commit."""

from __future__ import annotations

import dramatiq
from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker

QUEUE = "evaluation"
RUN_ACTOR = "run_evaluation"
# Uploads' public scores have their own queue and a higher priority: a team gets its
# score within a minute even while an admin batch or the final has hundreds of runs
# waiting in the other queue (each worker holds a few messages of both, and takes the
# higher priority first).
PUBLIC_QUEUE = "evaluation_public"
PUBLIC_RUN_ACTOR = "run_public_evaluation"


def create_broker(redis_url: str) -> RedisBroker:
    broker = RedisBroker(url=redis_url)
    broker.declare_queue(QUEUE)
    broker.declare_queue(PUBLIC_QUEUE)
    return broker


def enqueue_runs(broker: Broker, run_ids: list[int], *, public: bool = False) -> None:
    queue, actor = (PUBLIC_QUEUE, PUBLIC_RUN_ACTOR) if public else (QUEUE, RUN_ACTOR)
    for run_id in run_ids:
        broker.enqueue(
            dramatiq.Message(
                queue_name=queue, actor_name=actor, args=(run_id,), kwargs={}, options={}
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
