"""Keeps the parallel slots of this process's calls in flight, and only theirs.

A slot is a lease in Redis that lapses unless renewed (portal/llm/budgets.py). One task
per process renews the leases of every call still in flight, a few times per lease
period, so a call may wait on the model as long as it needs; when the process is
killed the renewals stop and its slots lapse within PORTAL_LLM_LEASE_SECONDS.

A call whose caller has hung up is not renewed: its slot lapses within the lease time
even while the gateway still waits for the model's answer nobody will read. (A streamed
call needs no such check: the server stops the stream when its caller leaves, and the
stream frees its slot as it ends.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import Request

from portal.llm.budgets import Reservation, TeamBudgets

logger = logging.getLogger(__name__)

# Renewals per lease period: one missed round (Redis briefly away) still leaves time.
RENEWALS_PER_LEASE = 3


class LeaseKeeper:
    def __init__(self, budgets: TeamBudgets, lease_seconds: float) -> None:
        self._budgets = budgets
        self._interval = lease_seconds / RENEWALS_PER_LEASE
        # Each call in flight, with its request when its caller's leaving must be noticed.
        self._held: dict[Reservation, Request | None] = {}
        self._task: asyncio.Task[None] | None = None

    def hold(self, reservation: Reservation, request: Request | None = None) -> None:
        self._held[reservation] = request

    def release(self, reservation: Reservation) -> None:
        self._held.pop(reservation, None)

    @property
    def held(self) -> int:
        return len(self._held)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="llm-lease-keeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.renew_all()
            except Exception:  # never let one bad round end the renewals
                logger.exception("llm gateway: renewing parallel slots failed")

    async def renew_all(self) -> None:
        """Renew the lease of every call in flight whose caller is still there."""
        for reservation, request in list(self._held.items()):
            if request is not None and await request.is_disconnected():
                self._held.pop(reservation, None)  # its slot lapses; settling still frees it
                continue
            await self._budgets.renew(reservation)
