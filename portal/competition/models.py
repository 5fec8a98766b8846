from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

from portal.core.db import timestamptz

# The one competition of a deployment is the row with this id.
COMPETITION_ID = 1


class Phase(StrEnum):
    """Where the competition stands; follows from the clock and two admin actions."""

    before = "before"  # not started: uploads refused
    open = "open"  # uploads scored on the public seeds, the public board live
    frozen = "frozen"  # from freeze_at: others see the board as it was at the freeze
    ended = "ended"  # from ends_at: uploads refused, the final evaluation can start
    final = "final"  # the final evaluation has started (private seeds, admin-only)
    revealed = "revealed"  # the final board is public


class Competition(SQLModel, table=True):
    __tablename__ = "competition"
    __table_args__ = (
        sa.CheckConstraint(f"id = {COMPETITION_ID}", name="single_row"),
        sa.CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        sa.CheckConstraint(
            "freeze_at IS NULL OR (freeze_at >= starts_at AND freeze_at <= ends_at)",
            name="freeze_inside_window",
        ),
    )

    id: int = Field(default=COMPETITION_ID, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(120), nullable=False))
    starts_at: datetime = Field(sa_column=timestamptz())
    freeze_at: datetime | None = Field(
        default=None, sa_column=timestamptz(nullable=True, default_now=False)
    )
    ends_at: datetime = Field(sa_column=timestamptz(default_now=False))
    public_seeds: list[int] = Field(
        default_factory=list,
        sa_column=sa.Column(postgresql.ARRAY(sa.BigInteger), nullable=False, server_default="{}"),
    )
    # Never shown to a participant: the final evaluation's seeds.
    private_seeds: list[int] = Field(
        default_factory=list,
        sa_column=sa.Column(postgresql.ARRAY(sa.BigInteger), nullable=False, server_default="{}"),
    )
    # The batch every upload is evaluated in (on the public seeds); a new one when the
    # public seeds change, so every score on the board comes from the same seeds.
    public_batch_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("evaluation_batch.id"), nullable=True),
    )
    final_batch_id: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("evaluation_batch.id"), nullable=True),
    )
    final_started_at: datetime | None = Field(
        default=None, sa_column=timestamptz(nullable=True, default_now=False)
    )
    revealed_at: datetime | None = Field(
        default=None, sa_column=timestamptz(nullable=True, default_now=False)
    )
    # The phase last written to the audit log, so each change is recorded exactly once,
    # whether an admin action or the clock made it.
    recorded_phase: str = Field(
        default=Phase.open,
        sa_column=sa.Column(sa.String(10), nullable=False, server_default=Phase.open),
    )
    updated_at: datetime | None = Field(default=None, sa_column=timestamptz())
