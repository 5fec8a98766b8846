from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from portal.core.i18n import gettext as _
from portal.core.text import NameText
from portal.teams.models import Role

EMAIL_MAX = 254


def normalise_email(value: str) -> str:
    value = value.strip().lower()
    local, _at, domain = value.partition("@")
    if not local or "." not in domain or len(value.split()) != 1 or len(value) > EMAIL_MAX:
        raise ValueError(_("enter an email address like team@example.org"))
    return value


def normalise_name(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise ValueError(_("the team name must not be empty"))
    if len(value) > 100:
        raise ValueError(_("the team name must be at most 100 characters"))
    return value


class TeamCreate(BaseModel):
    name: NameText = Field(description="Display name, unique (case-insensitive)")
    email: NameText = Field(description="Login email, unique")
    role: Role = Role.participant

    _email = field_validator("email")(classmethod(lambda cls, v: normalise_email(v)))
    _name = field_validator("name")(classmethod(lambda cls, v: normalise_name(v)))


class TeamUpdate(BaseModel):
    is_active: bool | None = None
    daily_submission_limit: int | None = Field(default=None, ge=0, le=1_000_000)


class TeamPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    email: str
    role: Role
    is_active: bool
    token_prefix: str
    daily_submission_limit: int | None
    created_at: datetime


class TeamWithToken(TeamPublic):
    api_token: str = Field(description="Shown once; store it now, the portal keeps only a hash")
