"""The app-wide resources a handler can ask for, by type (full-stack-fastapi-template's
`api/deps.py`): `settings: SettingsDep`, `storage: StorageDep`, ...

`create_app` builds each resource once and keeps it on `app.state`; these functions are
the only readers, so a test swaps one with `app.dependency_overrides[get_clock] = ...`
and every handler that declares it sees the replacement.

They are `async def` though they never wait: FastAPI runs a plain `def` dependency in
its thread pool, one thread hop per dependency per request, which cost a leaderboard
poll more than all of its own work.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from dramatiq import Broker
from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from portal.core.config import Settings
from portal.core.storage import Storage

Clock = Callable[[], datetime]

# Each is `async def` although it only reads app.state: FastAPI runs a plain `def`
# dependency in the thread pool, a hop that every request would pay for nothing.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_storage(request: Request) -> Storage:
    return request.app.state.storage


async def get_broker(request: Request) -> Broker:
    return request.app.state.broker


async def get_redis(request: Request) -> Redis:
    return request.app.state.redis


async def get_clock(request: Request) -> Clock:
    # The clock itself, not a reading of it: a handler reads it when its rules need "now".
    return request.app.state.clock


async def get_engine(request: Request) -> AsyncEngine:
    return request.app.state.engine


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """For writes that must commit on their own (an audit of a refused request)."""
    return request.app.state.sessionmaker


SettingsDep = Annotated[Settings, Depends(get_settings)]
StorageDep = Annotated[Storage, Depends(get_storage)]
BrokerDep = Annotated[Broker, Depends(get_broker)]
RedisDep = Annotated[Redis, Depends(get_redis)]
ClockDep = Annotated[Clock, Depends(get_clock)]
EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
