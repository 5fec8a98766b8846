"""Login rules: throttling per IP and per email, audit of every attempt."""

from __future__ import annotations

import hashlib

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from portal.audit import service as audit
from portal.auth.deps import REVOKED_SESSION_PREFIX
from portal.core.cookies import session_data
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


def audit_subject(email: str) -> str:
    """What a failed login records as its target: the email, never a secret typed there."""
    if "@" in email and not email.startswith("pt_") and len(email) <= 64:
        return email
    return "sha256:" + hashlib.sha256(email.encode()).hexdigest()[:16]


async def _audit_failure(request: Request, email: str, reason: str) -> None:
    # Committed on its own: the request itself fails, and its transaction rolls back.
    await audit.record_now(
        request.app.state.sessionmaker,
        "auth.login_failed",
        target_type="email",
        target_id=audit_subject(email),
        details={"reason": reason},
    )


async def login(request: Request, session: AsyncSession, email: str, token: str) -> Team:
    """The team for these credentials, or Unauthorized / TooManyRequests.

    Each attempt is counted before the credentials are checked (and forgiven when they
    are right), so parallel guesses cannot slip past the limit between check and count,
    and a throttled caller learns nothing about the credentials.
    """
    email = email.strip().lower()
    by_ip, by_email = _counters(request)
    ip = client_ip(request)
    ip_state = await by_ip.record(ip)
    email_state = await by_email.record(email)
    throttled = next((s for s in (ip_state, email_state) if s.exceeded), None)
    if throttled is not None:
        await _audit_failure(request, email, "throttled")
        raise TooManyRequests(
            f"Too many failed logins. Try again in {throttled.resets_in} seconds.",
            code="login_throttled",
            headers={"Retry-After": str(throttled.resets_in)},
            details={"retry_after_seconds": throttled.resets_in},
        )

    team = await teams.authenticate(session, email, token.strip())
    if team is None:
        # Hand the connection back before the audit write takes another one, so a flood
        # of bad logins cannot hold two pool connections each.
        await session.rollback()
        await _audit_failure(request, email, "invalid_credentials")
        raise Unauthorized(INVALID_CREDENTIALS, code="invalid_credentials")

    await by_ip.forgive(ip)
    await by_email.forgive(email)
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
