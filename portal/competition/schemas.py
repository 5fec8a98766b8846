from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from portal.core.i18n import gettext as _
from portal.core.text import NameText
from portal.core.time import Instant
from portal.evaluation.schemas import BatchProgress, Seeds


class CompetitionPublic(BaseModel):
    """What anyone may know: never the private seeds."""

    name: str
    phase: str
    starts_at: datetime
    freeze_at: datetime | None
    ends_at: datetime
    public_seeds: list[int]
    final_picks: int = Field(description="How many final submissions a team may pick")


class CompetitionAdmin(CompetitionPublic):
    private_seeds: list[int]
    public_batch_id: int | None
    final_batch_id: int | None
    final_started_at: datetime | None
    revealed_at: datetime | None
    final_progress: BatchProgress | None


class CompetitionUpdate(BaseModel):
    """PATCH: only the fields sent change; `freeze_at: null` removes the freeze.

    A field it does not know is refused (a typo such as `freeze` would otherwise be
    dropped without a word), and so is null for a field that cannot be empty."""

    model_config = ConfigDict(extra="forbid")

    name: NameText | None = Field(default=None, min_length=1, max_length=120)
    starts_at: Instant | None = None
    freeze_at: Instant | None = None
    ends_at: Instant | None = None
    public_seeds: Seeds | None = None
    private_seeds: Seeds | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())
        if not value:
            raise ValueError(_("the competition needs a name"))
        return value

    @model_validator(mode="after")
    def _no_null_for_required(self) -> "CompetitionUpdate":
        for name in ("name", "starts_at", "ends_at", "public_seeds", "private_seeds"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(
                    _(
                        "%(field)s cannot be null: send a value, or leave the field out to "
                        "keep it (only freeze_at may be null, which removes the freeze)",
                        field=name,
                    )
                )
        return self
