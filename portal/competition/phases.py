"""The phase of the competition, from its settings and the clock (no I/O here), and the
one place a phase change is written to the audit log."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session
from sqlmodel import col

from portal.audit.models import AuditLog
from portal.competition.models import COMPETITION_ID, Competition, Phase

# Phases in which teams may upload (and pick).
UPLOADS_OPEN = (Phase.open, Phase.frozen)


class CompetitionState(BaseModel):
    """The competition row as every request reads it (cached in Redis as JSON).

    Holds the private seeds: it never leaves the server as it is; the API and pages
    build their own views from it.
    """

    model_config = ConfigDict(from_attributes=True)

    name: str
    starts_at: datetime
    freeze_at: datetime | None
    ends_at: datetime
    public_seeds: list[int]
    private_seeds: list[int]
    public_batch_id: int | None
    final_batch_id: int | None
    final_started_at: datetime | None
    revealed_at: datetime | None
    updated_at: datetime

    def phase(self, now: datetime) -> Phase:
        return phase_at(self, now)

    def next_moment(self, now: datetime) -> tuple[str, datetime] | None:
        """What happens next on the clock and when: ("starts", t), ("freezes", t),
        ("ends", t); None once the clock has nothing left to do."""
        phase = self.phase(now)
        if phase == Phase.before:
            return "starts", self.starts_at
        if phase == Phase.open and self.freeze_at is not None and self.freeze_at > now:
            return "freezes", self.freeze_at
        if phase in (Phase.open, Phase.frozen):
            return "ends", self.ends_at
        return None

    def frozen_for_others(self, now: datetime) -> bool:
        """Visitors and participants see the frozen board: from freeze_at until the
        reveal (the final board replaces it then)."""
        return self.freeze_at is not None and now >= self.freeze_at and self.revealed_at is None


def phase_at(competition: CompetitionState | Competition, now: datetime) -> Phase:
    if competition.revealed_at is not None:
        return Phase.revealed
    if competition.final_started_at is not None:
        return Phase.final
    if now >= competition.ends_at:
        return Phase.ended
    if competition.freeze_at is not None and now >= competition.freeze_at:
        return Phase.frozen
    if now >= competition.starts_at:
        return Phase.open
    return Phase.before


# Every phase in the order a competition goes through them.
PHASE_ORDER = tuple(Phase)


def _reached_at(competition: Competition, phase: Phase) -> datetime | None:
    """When the competition entered `phase`; None if it went straight past it (a freeze at
    the start skips `open`, a freeze at the end skips `frozen`)."""
    freeze = competition.freeze_at
    return {
        Phase.before: None,
        Phase.open: competition.starts_at
        if freeze is None or freeze > competition.starts_at
        else None,
        Phase.frozen: freeze if freeze is not None and freeze < competition.ends_at else None,
        Phase.ended: competition.ends_at,
        Phase.final: competition.final_started_at,
        Phase.revealed: competition.revealed_at,
    }[phase]


def _steps(
    competition: Competition, before: Phase, phase: Phase, now: datetime, actor: int | None
) -> list[tuple[Phase, Phase, datetime, int | None]]:
    """The changes from `before` to `phase` as (from, to, at, actor), one per phase passed.

    When nobody swept for a while (no worker running), the clock may have frozen and
    ended the competition meanwhile: each change it made is recorded at its own instant,
    with no actor. The last change is the caller's (an admin's action: at `now`, theirs).
    A change backwards (an admin moved the start or the end) is one step.
    """
    if PHASE_ORDER.index(phase) < PHASE_ORDER.index(before):
        return [(before, phase, now, actor)]
    passed = [
        p
        for p in PHASE_ORDER[PHASE_ORDER.index(before) + 1 : PHASE_ORDER.index(phase)]
        if _reached_at(competition, p) is not None
    ]
    steps = []
    for start, end in zip([before, *passed], [*passed, phase], strict=True):
        last = end == phase
        at = now if last and actor is not None else _reached_at(competition, end) or now
        steps.append((start, end, at, actor if last else None))
    return steps


def audit_phase_change(
    session: Session, now: datetime, *, actor_team_id: int | None = None
) -> Phase | None:
    """Write one audit row per phase change since the last one; the new phase or None.

    The conditional UPDATE makes it exactly once however many workers sweep at the same
    moment (the worker's watchdog calls this every few seconds for the clock's changes;
    admin actions call it in their own transaction).
    """
    competition = session.get(Competition, COMPETITION_ID)
    if competition is None:
        return None
    phase = phase_at(competition, now)
    before = Phase(competition.recorded_phase)
    if phase == before:
        return None
    changed = session.execute(
        sa.update(Competition)
        .where(
            col(Competition.id) == COMPETITION_ID,
            col(Competition.recorded_phase) == before,
        )
        .values(recorded_phase=phase)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]  # DML gives a CursorResult
        return None
    for start, end, at, actor in _steps(competition, before, phase, now, actor_team_id):
        session.add(
            AuditLog(
                action="competition.phase",
                actor_team_id=actor,
                target_type="competition",
                target_id=str(COMPETITION_ID),
                details={"from": start, "to": end, "at": at.isoformat()},
            )
        )
    return phase
