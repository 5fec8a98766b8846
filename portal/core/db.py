"""Database engine, the one-transaction-per-request session, and column helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import SQLModel

# Stable constraint names, so migrations can name what they drop.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

AfterCommit = Callable[[], Awaitable[None] | None]


def async_database_url(url: str) -> str:
    """Accept postgres://, postgresql:// or postgresql+psycopg:// and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def psycopg_conninfo(url: str) -> str:
    """A plain libpq URL (no SQLAlchemy driver suffix) for psycopg.connect."""
    return async_database_url(url).replace("postgresql+psycopg://", "postgresql://", 1)


def create_engine(url: str, **overrides: Any) -> AsyncEngine:
    options: dict[str, Any] = {
        "pool_size": 10,
        "max_overflow": 20,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
    }
    options.update(overrides)
    return create_async_engine(async_database_url(url), **options)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` only once this session's transaction has committed.

    Background jobs are sent this way, so a worker never sees a row that a rolled-back
    request never wrote.
    """
    session.info.setdefault("after_commit", []).append(callback)


async def commit(session: AsyncSession) -> None:
    await session.commit()
    callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
    for callback in callbacks:
        result = callback()
        if result is not None:
            await result


@asynccontextmanager
async def savepoint(session: AsyncSession) -> AsyncIterator[None]:
    """A SAVEPOINT whose rollback also drops the jobs queued (`after_commit`) inside it.

    An action that fails here leaves the request's transaction as it was before the
    action, background jobs included, so the request can still answer and commit.
    """
    queued: list[AfterCommit] = session.info.setdefault("after_commit", [])
    queued_before = len(queued)
    nested = await session.begin_nested()
    try:
        yield
    except BaseException:
        # Still the session's savepoint unless the action rolled back the whole
        # transaction (a failed login hands its connection back that way). It may be
        # inactive yet current: a flush that failed inside it (a unique index refusing
        # a row) deactivates it, and until it is rolled back every later statement of
        # the request raises instead of rendering the refusal.
        if session.sync_session.get_nested_transaction() is nested.sync_transaction:
            await nested.rollback()
        del queued[queued_before:]
        raise
    if nested.is_active:
        await nested.commit()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One request, one transaction: commit after the handler returns, else roll back."""
    async with request.app.state.sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            session.info.pop("after_commit", None)
            raise
        else:
            await commit(session)


# scope="function": the commit happens before the response is sent, so a client that
# sees 201 can rely on the row being there.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def timestamptz(*, nullable: bool = False, default_now: bool = True, index: bool = False) -> Any:
    return sa.Column(
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default_now else None,
        index=index,
    )


def jsonb(*, nullable: bool = False, default: str = "{}") -> Any:
    return sa.Column(
        postgresql.JSONB(),
        nullable=nullable,
        server_default=sa.text(f"'{default}'::jsonb") if default is not None else None,
    )
