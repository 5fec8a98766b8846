from pydantic import BaseModel, Field

from portal.core.text import NameText
from portal.teams.schemas import TeamPublic


class LoginRequest(BaseModel):
    email: NameText = Field(max_length=254)
    api_token: NameText = Field(max_length=200)


class LoginResponse(BaseModel):
    team: TeamPublic
    csrf_token: str = Field(description="Send as X-CSRF-Token on state-changing cookie requests")
