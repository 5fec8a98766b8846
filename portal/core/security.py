"""API tokens, signed session cookies and CSRF tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

TOKEN_PREFIX = "pt_"
# How much of the token is kept in clear so admins can tell tokens apart.
VISIBLE_TOKEN_CHARS = 10
SESSION_COOKIE = "portal_session"


def new_api_token() -> str:
    """A fresh token: 256 random bits, URL-safe, with a recognisable prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens carry 256 bits of entropy, so a fast unsalted digest is safe and lets the
    # lookup use a unique index instead of scanning every team.
    return hashlib.sha256(token.encode()).hexdigest()


def visible_prefix(token: str) -> str:
    return token[:VISIBLE_TOKEN_CHARS]


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def tokens_match(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True)
class SessionData:
    """What the signed cookie carries. `team_id` is None before login (CSRF only)."""

    csrf: str
    team_id: int | None = None
    epoch: int = 0
    session_id: str = ""

    def to_dict(self) -> dict:
        return {"csrf": self.csrf, "tid": self.team_id, "ep": self.epoch, "sid": self.session_id}


class SessionSigner:
    def __init__(self, secret_key: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret_key, salt="portal-session")
        self.max_age_seconds = max_age_seconds

    def dumps(self, data: SessionData) -> str:
        return self._serializer.dumps(data.to_dict())

    def loads(self, cookie: str | None) -> SessionData | None:
        if not cookie:
            return None
        try:
            raw = self._serializer.loads(cookie, max_age=self.max_age_seconds)
        except BadSignature:
            return None
        if not isinstance(raw, dict) or not isinstance(raw.get("csrf"), str):
            return None
        team_id = raw.get("tid")
        return SessionData(
            csrf=raw["csrf"],
            team_id=team_id if isinstance(team_id, int) else None,
            epoch=int(raw.get("ep") or 0),
            session_id=str(raw.get("sid") or ""),
        )

    @staticmethod
    def new_anonymous() -> SessionData:
        return SessionData(csrf=new_csrf_token())

    @staticmethod
    def new_login(team_id: int, epoch: int) -> SessionData:
        # A fresh id and CSRF token at login, so nothing from before login survives it.
        return SessionData(
            csrf=new_csrf_token(),
            team_id=team_id,
            epoch=epoch,
            session_id=secrets.token_urlsafe(16),
        )
