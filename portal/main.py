"""The FastAPI application: `create_app(settings)` wires every domain together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from portal.audit import routes as audit_routes
from portal.auth import pages as auth_pages
from portal.auth import routes as auth_routes
from portal.competition import pages as competition_pages
from portal.competition import routes as competition_routes
from portal.competition.header import PhaseInHeader
from portal.core.bodylimit import BodySizeLimitMiddleware
from portal.core.config import Settings, get_settings
from portal.core.db import create_engine, create_sessionmaker
from portal.core.errors import API_ERROR_RESPONSES, install_error_handlers
from portal.core.i18n import LanguageMiddleware
from portal.core.middleware import RequestContextMiddleware
from portal.core.migrations import PROJECT_ROOT
from portal.core.redis import create_redis
from portal.core.security import SessionSigner
from portal.core.storage import StorageUnavailable, create_storage
from portal.core.templating import templates
from portal.core.time import utcnow
from portal.evaluation import pages as evaluation_pages
from portal.evaluation import routes as evaluation_routes
from portal.evaluation.queue import create_broker
from portal.exports import routes as export_routes
from portal.health import routes as health_routes
from portal.leaderboard import reveal as leaderboard_reveal
from portal.leaderboard import routes as leaderboard_routes
from portal.leaderboard.shortcut import UnchangedBoardShortcut
from portal.llm import pages as llm_pages
from portal.llm import routes as llm_routes
from portal.llm.gateway import routes as gateway_routes
from portal.llm.gateway.fastpath import GatewayFastPath
from portal.llm.gateway.service import Gateway
from portal.submissions import pages as submission_pages
from portal.submissions import routes as submission_routes
from portal.system import routes as system_routes
from portal.teams import pages as team_pages
from portal.teams import routes as team_routes

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    settings.check_safe_for_production()
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError(
            "create_app needs PORTAL_DATABASE_URL and PORTAL_REDIS_URL; "
            "`portal dev` and `portal serve` fill them in for the embedded servers"
        )
    database_url, redis_url = settings.database_url, settings.redis_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(database_url)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.redis = create_redis(redis_url)
        app.state.broker = create_broker(redis_url)
        app.state.llm_gateway = Gateway(settings, engine, app.state.redis)
        await app.state.llm_gateway.start()
        try:
            await run_in_threadpool(app.state.storage.ensure_ready)
        except StorageUnavailable as exc:
            # Keep serving: /readyz reports storage, uploads answer 503 until it is back.
            logger.warning("object storage not ready at start: %s", exc)
        try:
            yield
        finally:
            # The gateway first: its buffered usage log is written before the pool goes.
            await app.state.llm_gateway.close()
            await app.state.redis.aclose()
            app.state.broker.close()
            await engine.dispose()

    app = FastAPI(
        title="Competition portal",
        version="0.1.0",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # served below from vendored assets: no CDN, no inline script
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.signer = SessionSigner(settings.secret_key, settings.session_max_age_seconds)
    app.state.storage = create_storage(settings)
    # Tests move the clock (quota reset at midnight) by replacing this.
    app.state.clock = utcnow

    install_error_handlers(app)
    # Innermost: a visitor's unchanged board poll is answered before routing, and a
    # gateway call is served before it reaches the page-only shortcut; both still with
    # the request id, language and body-size limit around them.
    app.add_middleware(UnchangedBoardShortcut)
    app.add_middleware(GatewayFastPath)
    app.add_middleware(BodySizeLimitMiddleware, max_file_bytes=settings.max_upload_bytes)
    app.add_middleware(LanguageMiddleware, default_language=settings.default_language)
    app.add_middleware(
        RequestContextMiddleware, projector_frame_ancestors=settings.projector_frame_ancestors
    )
    app.mount("/static", StaticFiles(directory=PROJECT_ROOT / "static"), name="static")

    @app.get("/docs", include_in_schema=False)
    async def api_docs(request: Request) -> Response:
        return templates.TemplateResponse(request, "docs.html", {})

    for router in (
        # Served by GatewayFastPath; included for the OpenAPI schema.
        gateway_routes.router,
        health_routes.router,
        # Then the boards: every open page and projector polls them every 2 s.
        leaderboard_routes.router,
        auth_routes.router,
        auth_pages.router,
        team_routes.router,
        team_pages.router,
        submission_routes.router,
        submission_pages.router,
        competition_routes.router,
        competition_pages.router,
        evaluation_routes.router,
        evaluation_pages.router,
        leaderboard_reveal.router,
        audit_routes.router,
        audit_routes.pages,
        llm_routes.router,
        llm_pages.router,
        system_routes.router,
        system_routes.pages,
        export_routes.router,
    ):
        # The gateway documents OpenAI's error shape itself; everything else uses ours.
        responses = {} if router is gateway_routes.router else API_ERROR_RESPONSES
        # Every page's header shows the competition's phase; the gateway and the health
        # probes render no page and stay as lean as they were, and the boards (polled
        # every 2 s by every screen) fill the header only on their full pages.
        plain = router in (gateway_routes.router, health_routes.router, leaderboard_routes.router)
        app.include_router(
            router, responses=responses, dependencies=[] if plain else [PhaseInHeader]
        )
    return app


def create_gateway_app(settings: Settings | None = None) -> FastAPI:
    """Only the LLM gateway (`/llm/*`), for the listener evaluation containers can reach.

    Sandboxes on PORTAL_EVAL_NETWORK must reach the model and nothing else of the
    portal: this app has no other route, so no login, API or page is exposed there.
    """
    settings = settings or get_settings()
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("create_gateway_app needs PORTAL_DATABASE_URL and PORTAL_REDIS_URL")
    database_url, redis_url = settings.database_url, settings.redis_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(database_url, pool_size=5, max_overflow=10)
        redis = create_redis(redis_url)
        app.state.llm_gateway = Gateway(settings, engine, redis)
        await app.state.llm_gateway.start()
        try:
            yield
        finally:
            await app.state.llm_gateway.close()
            await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Competition portal LLM gateway",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.add_middleware(GatewayFastPath)
    app.add_middleware(BodySizeLimitMiddleware, max_file_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(gateway_routes.router)
    return app
