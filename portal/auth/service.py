"""Login rules: throttling per IP and per email, audit of every attempt."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from portal.audit import service as audit
from portal.auth.deps import REVOKED_SESSION_PREFIX, session_data
from portal.core.errors import TooManyRequests, Unauthorized
from portal.core.ratelimit import FailureCounter
from portal.teams import service as teams
from portal.teams.models import Team

INVALID_CREDENTIALS = "Email or API token is not correct, or the team is deactivated."


def _counters(request: Request) -> tuple[FailureCounter, FailureCounter]:
    settings = request.app.state.settings
    redis = request.app.state.redis
    limit = settings.login_failures_per_minute
    return (
        FailureCounter(redis, "login_fail:ip", limit),
        FailureCounter(redis, "login_fail:email", limit),
    )


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def _audit_failure(request: Request, email: str, reason: str) -> None:
    # Committed on its own: the request itself fails, and its transaction rolls back.
    await audit.record_now(
        request.app.state.sessionmaker,
        "auth.login_failed",
        target_type="email",
        target_id=email[:64],
        details={"reason": reason},
    )


async def login(request: Request, session: AsyncSession, email: str, token: str) -> Team:
    """The team for these credentials, or Unauthorized / TooManyRequests.

    Checked before the credentials, so a throttled caller learns nothing about them.
    """
    email = email.strip().lower()
    by_ip, by_email = _counters(request)
    ip = client_ip(request)
    for state in (await by_ip.state(ip), await by_email.state(email)):
        if state.exceeded:
            await _audit_failure(request, email, "throttled")
            raise TooManyRequests(
                f"Too many failed logins. Try again in {state.resets_in} seconds.",
                code="login_throttled",
                headers={"Retry-After": str(state.resets_in)},
                details={"retry_after_seconds": state.resets_in},
            )

    team = await teams.authenticate(session, email, token.strip())
    if team is None:
        await by_ip.record(ip)
        await by_email.record(email)
        await _audit_failure(request, email, "invalid_credentials")
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")

    await audit.record(session, "auth.login", actor=team, target_type="team", target_id=team.id)
    return team


async def logout(request: Request, session: AsyncSession, team: Team | None) -> None:
    """End this session: its id is revoked until the cookie would have expired anyway."""
    data = session_data(request)
    if data and data.session_id:
        await request.app.state.redis.set(
            f"{REVOKED_SESSION_PREFIX}:{data.session_id}",
            b"1",
            ex=request.app.state.settings.session_max_age_seconds,
        )
    if team is not None:
        await audit.record(
            session, "auth.logout", actor=team, target_type="team", target_id=team.id
        )
