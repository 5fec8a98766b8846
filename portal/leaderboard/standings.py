"""The competition's boards (public, frozen, live, final): who may see which, and their
rows, read from the `standings` materialized view (its query is standings.sql).

Which rows a board shows follows from the competition's state and the clock, never
from a stored choice: the public board turns frozen at `freeze_at` for everyone but
the admins' live board, and the final board becomes public at the reveal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from portal.competition.phases import CompetitionState
from portal.core.errors import Forbidden
from portal.core.i18n import lazy_gettext
from portal.core.pagination import Page, PageParams, paginate, search
from portal.evaluation.models import BatchSubmission
from portal.submissions.models import Submission
from portal.teams.models import Role, Team

standings = sa.table(
    "standings",
    sa.column("board", sa.Text),
    sa.column("team_id", sa.Integer),
    sa.column("submission_id", sa.Integer),
    sa.column("score", sa.Float),
    sa.column("submitted_at", sa.DateTime(timezone=True)),
    sa.column("entries", sa.Integer),
    sa.column("last_upload_at", sa.DateTime(timezone=True)),
    sa.column("rank", sa.Integer),
    sa.column("position", sa.Integer),
)

FINAL_NOT_REVEALED = lazy_gettext("The final results are not revealed yet.")
LIVE_IS_ADMIN_ONLY = lazy_gettext(
    "The live board is for admins only; everyone else sees the public board "
    "(/leaderboard?board=public), frozen from the freeze until the reveal."
)


class Board(StrEnum):
    """The board a viewer asks for (`?board=`), and the one shown (`frozen` is shown in
    place of `public` during the freeze)."""

    public = "public"
    frozen = "frozen"
    live = "live"
    final = "final"


@dataclass(frozen=True)
class Choice:
    """The board shown and the standings rows it reads."""

    shown: Board
    rows_of: str  # the `standings.board` value
    frozen_at: datetime | None
    # The final board's shake-up: the board whose ranks sit beside the final ones.
    compared_with: str = "public"


def audience_board(state: CompetitionState) -> str:
    """The board the room last saw before the final: the frozen one when there was a
    freeze. The reveal starts from it and the final board's shake-up compares with it,
    so the projector never shows a team up a place in one and level in the other."""
    return "frozen" if state.freeze_at is not None else "public"


def final_is_public(state: CompetitionState) -> bool:
    return state.revealed_at is not None


def choose(asked: Board | None, state: CompetitionState, now: datetime, *, admin: bool) -> Choice:
    """The board to show for `asked` (None: the current one); Forbidden if this viewer
    may not see it."""
    if asked is None:
        asked = Board.final if final_is_public(state) else Board.public
    if asked == Board.final:
        if not admin and not final_is_public(state):
            raise Forbidden(str(FINAL_NOT_REVEALED), code="final_not_revealed")
        return Choice(Board.final, "final", None, compared_with=audience_board(state))
    if asked == Board.live:
        if not admin:
            raise Forbidden(str(LIVE_IS_ADMIN_ONLY), code="admin_required")
        return Choice(Board.live, "public", None)
    # public (or `frozen` asked by name): what everyone sees, admins included, so a
    # projector on an admin's laptop shows what the room may see.
    if state.frozen_for_others(now):
        return Choice(Board.frozen, "frozen", state.freeze_at)
    return Choice(Board.public, "public", None)


def tabs(state: CompetitionState, *, admin: bool) -> list[Board]:
    """The boards this viewer can switch between."""
    shown = [Board.public]
    if admin:
        shown.append(Board.live)
    if admin or final_is_public(state):
        shown.append(Board.final)
    return shown


@dataclass(frozen=True)
class StandingRow:
    rank: int | None
    team_id: int
    team_name: str
    score: float | None
    submission_id: int | None
    submitted_at: datetime | None
    entries: int
    last_upload_at: datetime | None
    # On the final board: the team's row on the board the room last saw (the shake-up).
    public_rank: int | None = None
    public_score: float | None = None

    @property
    def shake_up(self) -> int | None:
        """Places gained from the public rank to the final one (positive is up)."""
        if self.rank is None or self.public_rank is None:
            return None
        return self.public_rank - self.rank


def _select(choice: Choice) -> sa.Select[tuple[object, ...]]:
    """The board's rows in order; the final board's with each team's public row."""
    public = standings.alias("public_row")
    with_public = choice.rows_of == "final"
    statement = (
        sa.select(
            standings.c.rank,
            standings.c.team_id,
            col(Team.name),
            standings.c.score,
            standings.c.submission_id,
            standings.c.submitted_at,
            standings.c.entries,
            standings.c.last_upload_at,
            *((public.c.rank, public.c.score) if with_public else ()),
        )
        .join(Team, col(Team.id) == standings.c.team_id)
        .where(standings.c.board == choice.rows_of)
        .order_by(standings.c.position)
    )
    if with_public:
        statement = statement.outerjoin(
            public,
            sa.and_(
                public.c.board == choice.compared_with,
                public.c.team_id == standings.c.team_id,
            ),
        )
    return statement


def board_statement(choice: Choice, query: str = "") -> sa.Select[tuple[object, ...]]:
    """The board's rows in order, of the teams whose name contains `query`, in
    StandingRow's order: what the board pages show and the CSV export writes."""
    return _select(choice).where(*search(query, col(Team.name)))


async def rows(
    session: AsyncSession, choice: Choice, page: PageParams, query: str = ""
) -> Page[StandingRow]:
    statement = board_statement(choice, query)
    return await paginate(session, statement, page, lambda row: StandingRow(*row))


@dataclass(frozen=True)
class TeamPublicView:
    """A team's public page: its row on the board everyone sees, its public scores."""

    team: Team
    row: StandingRow | None
    final_row: StandingRow | None
    # (uploaded at, public score or None) for each upload the public board counts.
    scores: list[tuple[datetime, float | None]]


async def _row_of(session: AsyncSession, choice: Choice, team_id: int) -> StandingRow | None:
    found = (await session.execute(_select(choice).where(standings.c.team_id == team_id))).first()
    # The row holds _select's columns, in StandingRow's order.
    return StandingRow(*found) if found else None  # type: ignore[arg-type,call-arg]


async def team_view(
    session: AsyncSession, state: CompetitionState, now: datetime, team_id: int
) -> TeamPublicView | None:
    """None for a team that is on no board: unknown, an admin, or deactivated."""
    team = await session.get(Team, team_id)
    if team is None or not team.is_active or team.role != Role.participant:
        return None
    public = choose(Board.public, state, now, admin=False)
    row = await _row_of(session, public, team_id)
    final_row = None
    if final_is_public(state):
        final_row = await _row_of(session, choose(Board.final, state, now, admin=False), team_id)
    scores: list[tuple[datetime, float | None]] = []
    if state.public_batch_id is not None:
        statement = (
            sa.select(col(Submission.created_at), col(BatchSubmission.mean_score))
            .join(BatchSubmission, col(BatchSubmission.submission_id) == Submission.id)
            .where(
                col(BatchSubmission.batch_id) == state.public_batch_id,
                col(Submission.team_id) == team_id,
            )
            .order_by(col(Submission.created_at), col(Submission.id))
        )
        if public.frozen_at is not None:
            # Frozen: uploads after the freeze stay hidden here as on the board.
            statement = statement.where(col(Submission.created_at) < public.frozen_at)
        rows = await session.execute(statement)
        scores = [(at, score) for at, score in rows if at is not None]
    return TeamPublicView(team=team, row=row, final_row=final_row, scores=scores)
