"""Login rules: throttling per IP and per email, audit of every attempt."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from portal.audit import service as audit
from portal.auth.deps import REVOKED_SESSION_PREFIX
from portal.core.deps import RedisDep, SessionmakerDep, SettingsDep
from portal.core.errors import TooManyRequests, Unauthorized
from portal.core.i18n import gettext as _
from portal.core.i18n import lazy_gettext
from portal.core.ratelimit import FailureCounter, record_together
from portal.core.security import SessionData
from portal.teams import service as teams
from portal.teams.models import Team

INVALID_CREDENTIALS = lazy_gettext("Email or API token is not correct, or the team is deactivated.")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def audit_subject(email: str) -> str:
    """What a failed login records as its target: the email, never a secret typed there."""
    if "@" in email and not email.startswith("pt_") and len(email) <= 64:
        return email
    return "sha256:" + hashlib.sha256(email.encode()).hexdigest()[:16]


class Logins:
    """Logging in and out, with what it needs: the failure counters and revoked sessions
    in Redis, and its own sessions for audits that outlive a refused request."""

    def __init__(
        self, settings: SettingsDep, redis: RedisDep, sessionmaker: SessionmakerDep
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.sessionmaker = sessionmaker

    def _counters(self) -> tuple[FailureCounter, FailureCounter]:
        limit = self.settings.login_failures_per_minute
        return (
            FailureCounter(self.redis, "login_fail:ip", limit),
            FailureCounter(self.redis, "login_fail:email", limit),
        )

    async def _audit_failure(self, email: str, reason: str) -> None:
        # Committed on its own: the request itself fails, and its transaction rolls back.
        await audit.record_now(
            self.sessionmaker,
            "auth.login_failed",
            target_type="email",
            target_id=audit_subject(email),
            details={"reason": reason},
        )

    async def login(self, session: AsyncSession, email: str, token: str, ip: str) -> Team:
        """The team for these credentials, or Unauthorized / TooManyRequests.

        Each attempt is counted before the credentials are checked (and forgiven when
        they are right), so parallel guesses cannot slip past the limit between check and
        count, and a throttled caller learns nothing about the credentials.
        """
        email = email.strip().lower()
        by_ip, by_email = self._counters()
        ip_state, email_state = await record_together(self.redis, [(by_ip, ip), (by_email, email)])
        throttled = next((s for s in (ip_state, email_state) if s.exceeded), None)
        if throttled is not None:
            await self._audit_failure(email, "throttled")
            raise TooManyRequests(
                _(
                    "Too many failed logins. Try again in %(seconds)s seconds.",
                    seconds=throttled.resets_in,
                ),
                code="login_throttled",
                headers={"Retry-After": str(throttled.resets_in)},
                details={"retry_after_seconds": throttled.resets_in},
            )

        team = await teams.authenticate(session, email, token.strip())
        if team is None:
            # Hand the connection back before the audit write takes another one, so a
            # flood of bad logins cannot hold two pool connections each.
            await session.rollback()
            await self._audit_failure(email, "invalid_credentials")
            raise Unauthorized(str(INVALID_CREDENTIALS), code="invalid_credentials")

        await by_ip.forgive(ip)
        await by_email.forgive(email)
        await audit.record(session, "auth.login", actor=team, target_type="team", target_id=team.id)
        return team

    async def logout(
        self, session: AsyncSession, team: Team | None, data: SessionData | None
    ) -> None:
        """End this session: its id is revoked until the cookie would have expired anyway."""
        if data and data.session_id:
            await self.redis.set(
                f"{REVOKED_SESSION_PREFIX}:{data.session_id}",
                b"1",
                ex=self.settings.session_max_age_seconds,
            )
        if team is not None:
            await audit.record(
                session, "auth.logout", actor=team, target_type="team", target_id=team.id
            )


LoginsDep = Annotated[Logins, Depends()]
