"""Each team's LLM budgets, held in Redis so every portal process shares one count.

Four budgets: requests per minute, tokens per minute, tokens per day (the day ends at
midnight in the competition's timezone) and calls in flight at once. A call is let
through in one atomic step (one Lua script) that checks all four and, only if every one
has room, takes its share of each: one request, its reservation of tokens (the
request's max_tokens, or the default, plus an estimate of its prompt), and a parallel
slot. No two processes can both take the last of anything, and a refused call takes
nothing. When the call ends a second script settles it, also in one step: the tokens
reserved become the tokens the model reported, the slot is freed, and a call the portal
could not complete gives back its request and its tokens.

The prompt's share of a reservation is an upper bound for text (one token per byte of
the body, see prompt_estimate), so a burst of calls cannot spend more than its
reservations. A model may still report more than any body could hold (an image part
costs a fixed number of tokens whatever its URL's length): nothing spent is forgiven.
The minute is charged up to its budget and the rest is owed, charged to the minutes
that follow, so over any run of minutes a team spends at most its budget per minute
plus one such overrun.

A parallel slot is a lease: a member of the team's sorted set scored with its expiry.
The process holding it frees it when the call ends and renews it while the call is in
flight (portal/llm/gateway/leases.py); if the process is killed, the lease lapses on its
own and the next call sweeps it out. A run's leases carry its tag, so the worker frees
them when the run's container ends; and a run's call takes nothing once the run's token
is gone (checked in the same step), so a call let in just before the run ended cannot
take a slot just after the worker freed the run's.

The minute comes from Redis's clock, so processes on hosts whose clocks disagree still
share one bucket. The day is named by the portal (its date in the competition's
timezone): days end at local midnight, which Redis does not know about.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis

from portal.core.redis import ScriptBatcher

KEY_PREFIX = "llm"
# Minute buckets outlive their minute a little: a settlement may arrive just after.
MINUTE_KEY_MS = 120_000

_TAKE_SCRIPT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local minute = math.floor(now_ms / 60000)
local team = ARGV[1]
local requests_key = 'llm:rpm:' .. team .. ':' .. minute
local minute_tokens_key = 'llm:tpm:' .. team .. ':' .. minute
local day_tokens_key = 'llm:tpd:' .. team .. ':' .. ARGV[9]
local leases_key = 'llm:par:' .. team
local owed_key = 'llm:tpm-owed:' .. team
redis.call('ZREMRANGEBYSCORE', leases_key, '-inf', now_ms)
local requests = tonumber(redis.call('GET', requests_key) or '0')
local minute_tokens = tonumber(redis.call('GET', minute_tokens_key) or '-1')
local owed = tonumber(redis.call('GET', owed_key) or '0')
if minute_tokens < 0 then
  -- A new minute starts with what earlier minutes spent beyond their budget.
  minute_tokens = math.min(owed, tonumber(ARGV[3]))
  if minute_tokens > 0 then
    redis.call('SET', minute_tokens_key, minute_tokens, 'PX', ARGV[12])
    owed = owed - minute_tokens
    if owed > 0 then
      redis.call('SET', owed_key, owed, 'KEEPTTL')
    else
      redis.call('DEL', owed_key)
    end
  end
end
local day_tokens = tonumber(redis.call('GET', day_tokens_key) or '0')
local parallel = redis.call('ZCARD', leases_key)
local reset_ms = (minute + 1) * 60000 - now_ms
local want = tonumber(ARGV[6])
local refusal = ''
if ARGV[11] == '1' then
  if ARGV[13] ~= '' and redis.call('EXISTS', ARGV[13]) == 0 then
    refusal = 'grant_ended'
  elseif requests >= tonumber(ARGV[2]) then
    refusal = 'requests'
  elseif minute_tokens + want > tonumber(ARGV[3]) then
    refusal = 'tokens_minute'
  elseif day_tokens + want > tonumber(ARGV[4]) then
    refusal = 'tokens_day'
  elseif parallel >= tonumber(ARGV[5]) then
    refusal = 'parallel'
  else
    requests = redis.call('INCR', requests_key)
    minute_tokens = redis.call('INCRBY', minute_tokens_key, want)
    day_tokens = redis.call('INCRBY', day_tokens_key, want)
    if redis.call('PTTL', requests_key) < 0 then
      redis.call('PEXPIRE', requests_key, ARGV[12])
    end
    if redis.call('PTTL', minute_tokens_key) < 0 then
      redis.call('PEXPIRE', minute_tokens_key, ARGV[12])
    end
    if redis.call('TTL', day_tokens_key) < 0 then
      redis.call('EXPIRE', day_tokens_key, ARGV[10])
    end
    redis.call('ZADD', leases_key, now_ms + tonumber(ARGV[8]), ARGV[7])
    redis.call('PEXPIRE', leases_key, ARGV[8])
    parallel = parallel + 1
  end
end
return {refusal, requests, minute_tokens, day_tokens, parallel, reset_ms, minute, owed}
"""

# ARGV: team, minute, day, reserved, used, lease, give the request back ('1'/'0'), the
# tokens per minute the call was allowed under. A bucket that has expired meanwhile is
# left alone, never recreated. What a call spent beyond its reservation and beyond its
# minute's budget is owed, charged to the minutes that follow (see the take script); it
# lapses after as many minutes as it would fill, as a team idle that long has paid it.
_SETTLE_SCRIPT = """
local team = ARGV[1]
local delta = tonumber(ARGV[5]) - tonumber(ARGV[4])
if delta ~= 0 then
  local minute_tokens_key = 'llm:tpm:' .. team .. ':' .. ARGV[2]
  local day_tokens_key = 'llm:tpd:' .. team .. ':' .. ARGV[3]
  local limit = tonumber(ARGV[8])
  local overflow = 0
  if redis.call('EXISTS', minute_tokens_key) == 1 then
    local total = redis.call('INCRBY', minute_tokens_key, delta)
    if delta > 0 and total > limit then
      overflow = math.min(total - limit, delta)
      redis.call('DECRBY', minute_tokens_key, overflow)
    end
  elseif delta > 0 then
    overflow = delta
  end
  if overflow > 0 then
    local owed_key = 'llm:tpm-owed:' .. team
    local owed = redis.call('INCRBY', owed_key, overflow)
    local minutes = math.ceil(owed / math.max(limit, 1)) + 1
    redis.call('PEXPIRE', owed_key, math.min(minutes, 1440) * 60000)
  end
  if redis.call('EXISTS', day_tokens_key) == 1 then
    redis.call('INCRBY', day_tokens_key, delta)
  end
end
if ARGV[7] == '1' then
  local requests_key = 'llm:rpm:' .. team .. ':' .. ARGV[2]
  if redis.call('EXISTS', requests_key) == 1 then
    redis.call('DECR', requests_key)
  end
end
return redis.call('ZREM', 'llm:par:' .. team, ARGV[6])
"""

# ARGV: team, lease, lease milliseconds. Renews only a lease that is still held.
_RENEW_SCRIPT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local key = 'llm:par:' .. ARGV[1]
local renewed = redis.call('ZADD', key, 'XX', 'CH', now_ms + tonumber(ARGV[3]), ARGV[2])
if renewed == 1 then
  redis.call('PEXPIRE', key, ARGV[3])
end
return renewed
"""

# ARGV: team, tag. Frees every lease carrying the tag (a run's, when its container ended).
_FREE_TAGGED_SCRIPT = """
local key = 'llm:par:' .. ARGV[1]
local prefix = ARGV[2] .. ':'
local freed = 0
for _, lease in ipairs(redis.call('ZRANGE', key, 0, -1)) do
  if string.sub(lease, 1, string.len(prefix)) == prefix then
    freed = freed + redis.call('ZREM', key, lease)
  end
end
return freed
"""


class Refusal(StrEnum):
    """Which budget refused a call (the OpenAI error's `type`; `model` is a 404)."""

    requests = "requests"
    tokens = "tokens"
    parallel = "parallel"
    model = "model"


@dataclass(frozen=True)
class Budgets:
    """The budgets in force for one team: its overrides, else the PORTAL_LLM_* defaults."""

    requests_per_minute: int
    tokens_per_minute: int
    tokens_per_day: int
    max_parallel: int
    models: tuple[str, ...] | None  # None: every model

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True)
class Ask:
    """The tokens a call reserves before it goes upstream: the completion it may
    produce (max_tokens times n, or the default) and an estimate of its prompt."""

    prompt: int
    completion: int

    @property
    def total(self) -> int:
        return self.prompt + self.completion


def prompt_estimate(body_bytes: int) -> int:
    """The most tokens a request body of this many bytes can hold as prompt: one per
    byte, since a token is at least one byte of text (and each message's few tokens of
    overhead take more bytes of JSON). An upper bound, so no burst of calls can outspend
    its reservations; English or code spends about a quarter of it, Korean about a
    third, and settlement gives the rest back as each call ends."""
    return body_bytes


@dataclass(frozen=True)
class Day:
    """The competition's current day: its name (the local date) and when it ends."""

    name: str
    seconds_left: int


@dataclass(frozen=True)
class Reservation:
    """What one allowed call holds until it is settled."""

    team_id: int
    minute: int
    day: str
    tokens: int
    lease: str
    tokens_per_minute: int  # the budget it was taken from, which its overspend fills


@dataclass(frozen=True)
class BudgetState:
    """A team's use of each budget, after this call took its share (if it was allowed)."""

    budgets: Budgets
    requests: int
    minute_tokens: int
    day_tokens: int
    parallel: int
    minute_reset_ms: int
    day_reset_seconds: int
    refusal: str = ""  # '' | requests | tokens_minute | tokens_day | parallel | GRANT_ENDED
    reservation: Reservation | None = None
    # Spent beyond earlier minutes' budgets (prompts longer than their estimate), not yet
    # charged: each new minute starts with up to its whole budget of it.
    owed_tokens: int = 0

    @property
    def allowed(self) -> bool:
        return not self.refusal

    @property
    def kind(self) -> Refusal | None:
        """The refused budget's kind; None when the call was allowed."""
        if not self.refusal:
            return None
        return Refusal.tokens if self.refusal.startswith("tokens") else Refusal(self.refusal)

    @property
    def minute_reset_seconds(self) -> int:
        return max(math.ceil(self.minute_reset_ms / 1000), 1)

    @property
    def retry_after_seconds(self) -> int:
        """When the refused budget has room again (a slot: soon, so in a second)."""
        if self.refusal == "tokens_day":
            return max(self.day_reset_seconds, 1)
        if self.refusal == "parallel":
            return 1
        return self.minute_reset_seconds

    def headers(self) -> dict[str, str]:
        """OpenAI's x-ratelimit-* names and formats ("12s" until the window resets),
        and the same three for the day's tokens and for calls in flight."""
        b = self.budgets
        reset = f"{self.minute_reset_seconds}s"
        return {
            "x-ratelimit-limit-requests": str(b.requests_per_minute),
            "x-ratelimit-remaining-requests": str(max(b.requests_per_minute - self.requests, 0)),
            "x-ratelimit-reset-requests": reset,
            "x-ratelimit-limit-tokens": str(b.tokens_per_minute),
            "x-ratelimit-remaining-tokens": str(max(b.tokens_per_minute - self.minute_tokens, 0)),
            "x-ratelimit-reset-tokens": reset,
            "x-ratelimit-limit-tokens-day": str(b.tokens_per_day),
            "x-ratelimit-remaining-tokens-day": str(max(b.tokens_per_day - self.day_tokens, 0)),
            "x-ratelimit-reset-tokens-day": f"{max(self.day_reset_seconds, 1)}s",
            "x-ratelimit-limit-parallel": str(b.max_parallel),
            "x-ratelimit-remaining-parallel": str(max(b.max_parallel - self.parallel, 0)),
        }


# The refusal of a call whose grant (a run's token) is gone: not a budget, a 401.
GRANT_ENDED = "grant_ended"


def new_lease(tag: str) -> str:
    return f"{tag}:{secrets.token_hex(8)}"


class TeamBudgets:
    """The scripts, registered once per process on its Redis client."""

    def __init__(self, redis: Redis, lease_seconds: float) -> None:
        self.lease_ms = int(lease_seconds * 1000)
        # One batcher each: a call's take must not wait behind the last call's settle.
        # A take whose caller gave up is not sent (nobody would settle it); a settle is.
        self._takes = ScriptBatcher(redis, drop_abandoned=True)
        self._settles = ScriptBatcher(redis)
        self._take_script = redis.register_script(_TAKE_SCRIPT)
        self._settle_script = redis.register_script(_SETTLE_SCRIPT)
        self._renew = redis.register_script(_RENEW_SCRIPT)

    async def _take(self, args: list[Any]) -> Any:
        return await self._takes.run(self._take_script, args)

    async def _settle(self, args: list[Any]) -> Any:
        return await self._settles.run(self._settle_script, args)

    async def take(
        self,
        team_id: int,
        budgets: Budgets,
        tokens: int,
        day: Day,
        *,
        lease_tag: str,
        grant_key: str | None = None,
    ) -> BudgetState:
        """One request, `tokens` tokens and a parallel slot, if every budget has room
        and `grant_key` (the Redis key of the run token that let the call in), if
        given, still exists; else refused with GRANT_ENDED."""
        return await self._run(team_id, budgets, tokens, day, new_lease(lease_tag), grant_key)

    async def peek(self, team_id: int, budgets: Budgets, day: Day) -> BudgetState:
        """The team's use of each budget, taking nothing."""
        return await self._run(team_id, budgets, 0, day, None)

    async def _run(
        self,
        team_id: int,
        budgets: Budgets,
        tokens: int,
        day: Day,
        lease: str | None,
        grant_key: str | None = None,
    ) -> BudgetState:
        (
            refusal,
            requests,
            minute_tokens,
            day_tokens,
            parallel,
            reset_ms,
            minute,
            owed,
        ) = await self._take(
            args=[
                team_id,
                budgets.requests_per_minute,
                budgets.tokens_per_minute,
                budgets.tokens_per_day,
                budgets.max_parallel,
                tokens,
                lease or "",
                self.lease_ms,
                day.name,
                day.seconds_left + 3600,  # the day's bucket outlives it a little
                "0" if lease is None else "1",
                MINUTE_KEY_MS,
                grant_key or "",
            ]
        )
        refusal = refusal.decode() if isinstance(refusal, bytes) else str(refusal)
        reservation = None
        if lease is not None and not refusal:
            reservation = Reservation(
                team_id, int(minute), day.name, tokens, lease, budgets.tokens_per_minute
            )
        return BudgetState(
            budgets=budgets,
            requests=int(requests),
            minute_tokens=int(minute_tokens),
            day_tokens=int(day_tokens),
            parallel=int(parallel),
            minute_reset_ms=int(reset_ms),
            day_reset_seconds=day.seconds_left,
            refusal=refusal,
            reservation=reservation,
            owed_tokens=int(owed),
        )

    async def settle(
        self, reservation: Reservation, used_tokens: int | None, *, give_back: bool = False
    ) -> None:
        """End a call: its tokens become `used_tokens` (None: as reserved, the model did
        not say), its slot is freed; `give_back` returns the request and every token."""
        used = 0 if give_back else reservation.tokens if used_tokens is None else used_tokens
        await self._settle(
            args=[
                reservation.team_id,
                reservation.minute,
                reservation.day,
                reservation.tokens,
                used,
                reservation.lease,
                "1" if give_back else "0",
                reservation.tokens_per_minute,
            ]
        )

    async def renew(self, reservation: Reservation) -> None:
        """Push the lease's expiry out again (a call still in progress)."""
        await self._renew(args=[reservation.team_id, reservation.lease, self.lease_ms])


def free_tagged_leases(redis: SyncRedis, team_id: int, tag: str) -> int:
    """Free every slot whose lease carries `tag` (sync: the worker's client)."""
    return int(redis.eval(_FREE_TAGGED_SCRIPT, 0, team_id, tag))
