import asyncio
import logging
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.concurrency import run_in_threadpool

from portal.core import metrics
from portal.core.deps import EngineDep, RedisDep, StorageDep

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


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    payload, content_type = metrics.render_latest()
    return Response(payload, media_type=content_type)
