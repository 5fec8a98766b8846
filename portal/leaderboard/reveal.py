"""The projector's reveal mode: the final standings shown from the last place up.

An admin page (the final results are secret until the reveal). It reads the `standings`
view once: every team on the final board with its rank and score there, beside its rank
and score on the board the audience last saw (the frozen board when the competition had
a freeze, else the public one). The stepping, animation and the reveal call happen in
the browser (static/reveal.js); until the final evaluation has finished and the boards
show it, the page says how far it is and polls itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.auth.deps import PageAdmin
from portal.competition.deps import CompetitionDep
from portal.competition.phases import CompetitionState
from portal.core.db import SessionDep
from portal.core.deps import RedisDep
from portal.core.htmx import HX_REDIRECT, wants_fragment
from portal.core.i18n import gettext as _
from portal.core.templating import render
from portal.evaluation import service as evaluation
from portal.evaluation.schemas import BatchProgress
from portal.leaderboard.refresh import REFRESHED_AT_KEY
from portal.leaderboard.standings import audience_board, standings
from portal.teams.models import Team

router = APIRouter(tags=["leaderboard"])
REVEAL_PATH = "/leaderboard/projector/reveal"
DEFAULT_INTERVAL_SECONDS = 4.0
PageInterval = Annotated[
    float,
    Query(gt=0, le=600, description="seconds between steps while auto-play runs"),
]


@dataclass(frozen=True)
class RevealTeam:
    team_id: int
    name: str
    final_rank: int | None
    final_score: float | None
    # None: the team was not on the audience's board (its first upload came after the
    # freeze); it starts at the bottom and its shake-up reads "new".
    public_rank: int | None
    public_position: int | None
    public_score: float | None


@dataclass(frozen=True)
class Ceremony:
    """What the page shows: the teams (final order) once ready, else why not yet."""

    waiting_for: str | None  # None when ready: a sentence for the screen otherwise
    progress: BatchProgress | None
    # The final board, best first (ties in the view's order: its `position`).
    teams: list[RevealTeam]
    audience_board: str

    @property
    def public_order(self) -> list[int]:
        """Team ids as the audience saw them; teams new since the freeze last, by name."""
        seen = sorted(
            (t for t in self.teams if t.public_position is not None),
            key=lambda t: t.public_position or 0,
        )
        new = sorted(
            (t for t in self.teams if t.public_position is None),
            key=lambda t: (t.name.casefold(), t.team_id),
        )
        return [t.team_id for t in seen + new]


async def final_teams(session: AsyncSession, board: str) -> list[RevealTeam]:
    final = standings.alias("final")
    seen = standings.alias("seen")
    rows = await session.execute(
        sa.select(
            final.c.team_id,
            col(Team.name),
            final.c.rank,
            final.c.score,
            seen.c.rank,
            seen.c.position,
            seen.c.score,
        )
        .join(Team, col(Team.id) == final.c.team_id)
        .outerjoin(seen, sa.and_(seen.c.team_id == final.c.team_id, seen.c.board == board))
        .where(final.c.board == "final")
        .order_by(final.c.position)
    )
    return [RevealTeam(*row) for row in rows.all()]


async def ceremony(session: AsyncSession, redis: Redis, competition: CompetitionState) -> Ceremony:
    board = audience_board(competition)
    if competition.final_batch_id is None:
        return Ceremony(
            _(
                "The final evaluation has not started yet. Start it on the competition page "
                "once the competition has ended; this page follows by itself."
            ),
            None,
            [],
            board,
        )
    progress = await evaluation.progress(session, competition.final_batch_id)
    if progress.done < progress.total:
        return Ceremony(
            _(
                "The final evaluation is running: %(done)s of %(total)s runs done.",
                done=progress.done,
                total=progress.total,
            ),
            progress,
            [],
            board,
        )
    batch = await evaluation.get(session, competition.final_batch_id)
    refreshed_at = await redis.get(REFRESHED_AT_KEY)
    if batch.finished_at is not None and (
        refreshed_at is None or float(refreshed_at) < batch.finished_at.timestamp()
    ):
        # The last result is in, but the boards (a materialized view refreshed a moment
        # after each result) may not show it yet: a ceremony must not reveal a stale board.
        return Ceremony(
            _("The final evaluation has finished; the boards are being updated."),
            progress,
            [],
            board,
        )
    return Ceremony(None, progress, await final_teams(session, board), board)


@router.get(REVEAL_PATH, include_in_schema=False)
async def reveal_page(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    redis: RedisDep,
    competition: CompetitionDep,
    interval: PageInterval = DEFAULT_INTERVAL_SECONDS,
) -> Response:
    """Full screen, for the admin at the projector: the final standings revealed from the
    last place up, one team per key press (or by auto-play)."""
    view = await ceremony(session, redis, competition)
    this_page = f"{REVEAL_PATH}?interval={interval:g}"
    if view.waiting_for is None and wants_fragment(request):
        # The waiting page polled and the results are ready: load the ceremony whole,
        # with its script and data (HTMX swaps never run scripts).
        return Response(status_code=200, headers={HX_REDIRECT: this_page})
    data = {
        "teams": [asdict(t) for t in view.teams],
        "public_order": view.public_order,
        "audience_board": view.audience_board,
        "revealed": competition.revealed_at is not None,
        "interval_seconds": interval,
    }
    return render(
        request,
        "projector_reveal.html",
        {
            "competition_name": competition.name,
            "ceremony": view,
            "public_rows": _public_rows(view),
            "reveal_data": data,
            "this_page": this_page,
            "interval": interval,
        },
        block="reveal_stage",
        headers={"Cache-Control": "no-store"},
    )


def _public_rows(view: Ceremony) -> list[RevealTeam]:
    by_id = {t.team_id: t for t in view.teams}
    return [by_id[team_id] for team_id in view.public_order]
