"""Fixed-window counters in Redis, atomic across any number of portal processes."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

# INCR and EXPIRE in one script so a crash between them cannot leave an immortal key.
# Several keys at once (ARGV[i] is key i's expiry): one attempt counted by IP and by email
# must take the same place in both queues, or parallel attempts interleave between the
# two counts and fewer than the limit get through.
_HIT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
    local count = redis.call('INCR', key)
    if count == 1 then
        redis.call('EXPIRE', key, ARGV[i])
    end
    counts[i] = count
end
return counts
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
        (state,) = await record_together(self.redis, [(self, subject)])
        return state

    async def forgive(self, subject: str) -> None:
        """Take back one counted attempt (it turned out not to be a failure)."""
        window_start, _ = _window(self.window_seconds)
        await self.redis.decr(self._key(subject, window_start))


async def record_together(
    redis: Redis, attempts: list[tuple[FailureCounter, str]]
) -> list[WindowState]:
    """Count one attempt on several counters in one atomic step, in the order given."""
    keys, expiries, resets = [], [], []
    for counter, subject in attempts:
        window_start, resets_in = _window(counter.window_seconds)
        keys.append(counter._key(subject, window_start))
        expiries.append(counter.window_seconds + 5)
        resets.append(resets_in)
    counts = await redis.eval(_HIT_SCRIPT, len(keys), *keys, *expiries)
    return [
        WindowState(int(count), counter.limit, resets_in)
        for count, (counter, _), resets_in in zip(counts, attempts, resets, strict=True)
    ]
