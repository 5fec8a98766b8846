import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.concurrency import run_in_threadpool

from portal.core import metrics
from portal.core.deps import ClockDep, EngineDep, RedisDep, SettingsDep, StorageDep
from portal.core.errors import Unauthorized
from portal.health import scrape

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up (no dependency checks: that is /readyz)."""
    return {"status": "ok"}


async def _check_database(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(sa.text("SELECT 1"))


@router.get("/readyz")
async def readyz(engine: EngineDep, redis: RedisDep, storage: StorageDep) -> JSONResponse:
    """Database, Redis and storage reachable; 503 naming each one that is not."""
    checks: dict[str, Callable[[], Awaitable[object]]] = {
        "database": lambda: _check_database(engine),
        "redis": redis.ping,
        "storage": lambda: run_in_threadpool(storage.ping),
    }
    results: dict[str, str] = {}

    async def run(name: str, check: Callable[[], Awaitable[object]]) -> None:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"
            # Details (hosts, users) go to the log, not to anonymous callers.
            logger.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            results[name] = "unavailable"

    await asyncio.gather(*(run(name, check) for name, check in checks.items()))
    failed = sorted(name for name, result in results.items() if result != "ok")
    if failed:
        body = {
            "status": "unavailable",
            "failed": failed,
            "checks": results,
            "message": f"Not ready: {', '.join(failed)} unreachable.",
        }
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ok", "checks": results})


# What a client that is refused is told to send (RFC 6750).
METRICS_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="metrics"'}


async def require_metrics_token(request: Request, settings: SettingsDep) -> None:
    """/metrics tells how busy the portal is and which teams' routes are hot: only for
    whoever holds PORTAL_METRICS_TOKEN (Prometheus), and for nobody while it is unset."""
    if settings.metrics_token is None:
        raise Unauthorized(
            "Metrics are off: set PORTAL_METRICS_TOKEN on the server, then send it as "
            "'Authorization: Bearer <token>'.",
            headers=METRICS_CHALLENGE,
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = settings.metrics_token.get_secret_value().encode()
    # Compared in constant time: how long a refusal takes says nothing about the token.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise Unauthorized(
            "Send the metrics token (PORTAL_METRICS_TOKEN) as 'Authorization: Bearer <token>'.",
            headers=METRICS_CHALLENGE,
        )


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(require_metrics_token)])
async def prometheus_metrics(
    settings: SettingsDep, engine: EngineDep, redis: RedisDep, clock: ClockDep
) -> Response:
    scraped = await scrape.scrape(engine, redis, clock(), settings.eval_stale_after_seconds)
    # Reads every process's value files: off the event loop.
    payload, content_type = await run_in_threadpool(metrics.render, settings.metrics_dir, scraped)
    return Response(payload, media_type=content_type)
