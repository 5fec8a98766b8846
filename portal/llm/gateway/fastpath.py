"""The gateway's routes served straight from the middleware stack, before FastAPI routing.

Gateway calls are the portal's hottest path, and FastAPI's routing, dependency
resolution and exception middleware were about half of what a call cost: far more than
the gateway's own work. The gateway's endpoints need none of that machinery (they read
their body raw, answer every failure themselves in OpenAI's shape and take nothing but
the request and the app's one Gateway), so this middleware calls them directly.

It sits inside RequestContextMiddleware and BodySizeLimitMiddleware, so a call keeps
its request id, security headers, metrics, access log, last-resort 500 and body-size
limit. Only the routes' own method and path are taken here; anything else (HEAD, a
wrong method, a trailing slash) goes on to FastAPI, which answers as it always did.
The routes stay declared on the gateway's APIRouter as well, which documents them in
the OpenAPI schema.
"""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from portal.core.errors import OUTAGES
from portal.llm.gateway import routes
from portal.llm.gateway.deps import get_gateway
from portal.llm.gateway.errors import unavailable


def _endpoints() -> dict[tuple[str, str], APIRoute]:
    """(method, path) -> the gateway route answering it, read from the router itself."""
    return {
        (method, route.path): route
        for route in routes.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }


class GatewayFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes = _endpoints()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get((scope.get("method", ""), scope.get("path", "")))
        if route is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # What routing would have set: the metrics and access log name calls by route.
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request, await get_gateway(request))
        except OUTAGES as exc:
            # What FastAPI's exception handlers answered for an outage the endpoint did
            # not catch itself: a 503 to retry, in OpenAI's shape, not the last-resort 500.
            response = unavailable(exc).response()
        await response(scope, receive, send)
