from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from portal.core.db import timestamptz
from portal.core.i18n import gettext as _


class Role(StrEnum):
    participant = "participant"
    admin = "admin"


def role_names() -> dict[str, str]:
    """Each role as the admin pages show it, in the reader's language (the stored value
    stays the enum's name)."""
    return {Role.participant.value: _("participant"), Role.admin.value: _("admin")}


class Team(SQLModel, table=True):
    __tablename__ = "team"
    __table_args__ = (
        sa.CheckConstraint("role IN ('participant', 'admin')", name="role_known"),
        sa.CheckConstraint("email = lower(email)", name="email_lowercase"),
        sa.Index("uq_team_name_ci", sa.text("lower(name)"), unique=True),
    )

    # None until the INSERT is flushed; every stored row has one.

    id: int = Field(default=None, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    email: str = Field(sa_column=sa.Column(sa.String(254), nullable=False, unique=True))
    role: str = Field(
        default=Role.participant,
        sa_column=sa.Column(sa.String(20), nullable=False, server_default="participant"),
    )
    # SHA-256 hex digest of the API token; the token itself is never stored.
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    # The first characters of the token, so an admin can tell which token a team holds.
    token_prefix: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    is_active: bool = Field(
        default=True, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.true())
    )
    # Bumped on deactivation and token rotation; a session cookie carrying an older
    # epoch is refused on its next request.
    session_epoch: int = Field(
        default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0")
    )
    # Per-team override of PORTAL_DAILY_SUBMISSIONS; NULL means the default.
    daily_submission_limit: int | None = Field(
        default=None, sa_column=sa.Column(sa.Integer, nullable=True)
    )
    created_at: datetime | None = Field(default=None, sa_column=timestamptz())
    updated_at: datetime | None = Field(default=None, sa_column=timestamptz())

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin
