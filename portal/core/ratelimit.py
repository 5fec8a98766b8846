"""Fixed-window counters in Redis, atomic across any number of portal processes."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

# INCR and EXPIRE in one script so a crash between them cannot leave an immortal key.
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return count
"""


@dataclass(frozen=True)
class WindowState:
    count: int
    limit: int
    resets_in: int

    @property
    def exceeded(self) -> bool:
        """True once this attempt is beyond the limit (the 11th of 10 allowed)."""
        return self.count > self.limit


def _window(window_seconds: int, now: float | None = None) -> tuple[int, int]:
    now = time.time() if now is None else now
    window_start = int(now // window_seconds) * window_seconds
    resets_in = max(1, window_start + window_seconds - int(now))
    return window_start, resets_in


class FailureCounter:
    """Counts failures (e.g. bad logins) per key per window; check before, record after."""

    def __init__(self, redis: Redis, prefix: str, limit: int, window_seconds: int = 60) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limit = limit
        self.window_seconds = window_seconds

    def _key(self, subject: str, window_start: int) -> str:
        return f"{self.prefix}:{subject}:{window_start}"

    async def state(self, subject: str) -> WindowState:
        window_start, resets_in = _window(self.window_seconds)
        raw = await self.redis.get(self._key(subject, window_start))
        return WindowState(int(raw or 0), self.limit, resets_in)

    async def record(self, subject: str) -> WindowState:
        """Count one attempt atomically and return the count including it."""
        window_start, resets_in = _window(self.window_seconds)
        count = await self.redis.eval(
            _HIT_SCRIPT, 1, self._key(subject, window_start), self.window_seconds + 5
        )
        return WindowState(int(count), self.limit, resets_in)

    async def forgive(self, subject: str) -> None:
        """Take back one counted attempt (it turned out not to be a failure)."""
        window_start, _ = _window(self.window_seconds)
        await self.redis.decr(self._key(subject, window_start))
