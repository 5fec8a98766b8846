"""Per-team requests per minute, counted in Redis so every portal process shares one count.

One Lua script reads Redis's own clock, picks the minute bucket, and only increments it
when the call is allowed: the check and the count are one atomic step (no two processes
can both take the last slot) and a refused call costs the team nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

KEY_PREFIX = "llm:rpm"

# Returns {allowed (0/1), used in this minute, milliseconds until the minute ends}.
# ARGV[2] = "1" takes a slot when one is free, "0" only looks.
_HIT_SCRIPT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local minute = math.floor(now_ms / 60000)
local key = KEYS[1] .. ':' .. minute
local reset_ms = (minute + 1) * 60000 - now_ms
local limit = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', key) or '0')
if ARGV[2] == '0' then
  return {1, used, reset_ms}
end
if used >= limit then
  return {0, used, reset_ms}
end
used = redis.call('INCR', key)
if used == 1 then
  redis.call('PEXPIRE', key, 120000)
end
return {1, used, reset_ms}
"""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    used: int
    reset_ms: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def retry_after_seconds(self) -> int:
        return max(math.ceil(self.reset_ms / 1000), 1)

    def headers(self) -> dict[str, str]:
        # The names and formats OpenAI's clients read ("12s" until the window resets).
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": f"{self.retry_after_seconds}s",
        }


class RequestsPerMinute:
    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_HIT_SCRIPT)

    async def hit(self, team_id: int, limit: int) -> RateDecision:
        """Take one of this minute's slots if there is one left."""
        return await self._run(team_id, limit, consume=True)

    async def peek(self, team_id: int, limit: int) -> RateDecision:
        return await self._run(team_id, limit, consume=False)

    async def _run(self, team_id: int, limit: int, *, consume: bool) -> RateDecision:
        allowed, used, reset_ms = await self._script(
            keys=[f"{KEY_PREFIX}:{team_id}"], args=[limit, "1" if consume else "0"]
        )
        return RateDecision(
            allowed=bool(allowed), limit=limit, used=int(used), reset_ms=int(reset_ms)
        )
