"""The app's one Gateway as a route dependency (the gateway's routes, usage pages)."""

from typing import Annotated

from fastapi import Depends, Request

from portal.llm.gateway.service import Gateway


async def get_gateway(request: Request) -> Gateway:
    # async: FastAPI runs a plain def dependency in a thread, which cost every call
    # a thread hop.
    """The app's one Gateway (its caller cache, budgets, upstream client, usage log)."""
    return request.app.state.llm_gateway


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
