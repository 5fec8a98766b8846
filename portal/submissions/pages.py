"""The participant's dashboard: upload, quota, "my submissions", final picks, detail."""

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.deps import PageTeam
from portal.competition.deps import CompetitionDep, PicksOpenDep
from portal.competition.models import Phase
from portal.competition.phases import UPLOADS_OPEN, CompetitionState
from portal.core.config import Settings
from portal.core.cookies import flash
from portal.core.db import SessionDep
from portal.core.deps import Clock, ClockDep, SettingsDep, StorageDep
from portal.core.errors import PortalError
from portal.core.forms import form_action
from portal.core.htmx import is_htmx, redirect
from portal.core.i18n import gettext as _
from portal.core.i18n import ngettext
from portal.core.pagination import MAX_PAGE, PageParams
from portal.core.templating import humanize_duration, render
from portal.core.text import FreeText, NameText
from portal.submissions import service
from portal.submissions.deps import OwnSubmissionPage, UploaderDep
from portal.teams.models import Team

router = APIRouter(include_in_schema=False)
SUBMISSIONS_PER_PAGE = 20
SOURCE_PREVIEW_BYTES = 256 * 1024


def _seeds(count: int) -> str:
    return ngettext("%(num)s public seed", "%(num)s public seeds", count)


def _what_happens_next(competition: CompetitionState) -> str:
    """What an accepted upload waits for, said where the team looks for its score."""
    if competition.public_seeds:
        return _(
            "Queued for scoring on %(seeds)s; the score appears here within a minute.",
            seeds=_seeds(len(competition.public_seeds)),
        )
    return _("Not scored yet: no public seeds are set.")


async def _dashboard(
    request: Request,
    team: Team,
    session: AsyncSession,
    settings: Settings,
    clock: Clock,
    competition: CompetitionState,
    page: int = 1,
    *,
    message: tuple[str, str] | None = None,
    status_code: int = 200,
    block: str | None = "submissions_panel",
) -> Response:
    now = clock()
    phase = competition.phase(now)
    quota = await service.quota_for(session, team, settings, now)
    submissions = await service.list_for_team(
        session, team, PageParams(page=page, size=SUBMISSIONS_PER_PAGE)
    )
    return render(
        request,
        "dashboard.html",
        {
            "team": team,
            "submissions": submissions,
            "quota": quota,
            "resets_in": humanize_duration((quota.resets_at - now).total_seconds()),
            "picks_used": await service.count_picks(session, team),
            "picks_limit": settings.final_picks,
            "picks_open": phase in UPLOADS_OPEN,
            "uploads_open": phase in UPLOADS_OPEN,
            "not_started": phase == Phase.before,
            "starts_in": humanize_duration((competition.starts_at - now).total_seconds()),
            "competition": competition,
            "public_seeds_text": _seeds(len(competition.public_seeds)),
            "max_upload_bytes": settings.max_upload_bytes,
            "message": message,
        },
        status_code=status_code,
        block=block,
    )


@router.get("/dashboard")
async def dashboard(
    request: Request,
    team: PageTeam,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    competition: CompetitionDep,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    return await _dashboard(request, team, session, settings, clock, competition, page)


@router.post("/submissions")
async def upload_form(
    request: Request,
    team: PageTeam,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    uploader: UploaderDep,
    competition: CompetitionDep,
    file: Annotated[UploadFile | None, File()] = None,
    note: Annotated[FreeText, Form(max_length=service.MAX_NOTE_CHARS)] = "",
) -> Response:
    upload = file if file is not None and file.filename else None
    outcome = await uploader.accept(session, team, upload, note)
    if isinstance(outcome, PortalError):
        if is_htmx(request):
            # The refusal wrote nothing (a form action); re-render the panel with the reason.
            return await _dashboard(
                request,
                team,
                session,
                settings,
                clock,
                competition,
                message=("error", outcome.message),
                status_code=outcome.status_code,
            )
        response = redirect(request, "/dashboard")
        flash(request, response, outcome.message, "error")
        return response
    submission, quota = outcome
    text = _(
        "Uploaded %(filename)s as #%(id)s. %(next)s %(remaining)s uploads left today.",
        filename=submission.filename,
        id=submission.id,
        next=_what_happens_next(competition),
        remaining=quota.remaining,
    )
    if is_htmx(request):
        return await _dashboard(
            request,
            team,
            session,
            settings,
            clock,
            competition,
            message=("success", text),
            status_code=201,
        )
    response = redirect(request, "/dashboard")
    flash(request, response, text, "success")
    return response


@router.post("/submissions/{submission_id}/final")
async def toggle_final_form(
    request: Request,
    team: PageTeam,
    session: SessionDep,
    settings: SettingsDep,
    submission: OwnSubmissionPage,
    final: Annotated[bool, Form()],
    picks_open: PicksOpenDep,
    back: Annotated[NameText, Form(max_length=20)] = "list",
) -> Response:
    limit = settings.final_picks
    outcome = await form_action(
        session,
        service.set_final,
        session,
        team,
        submission,
        final,
        limit=limit,
        picks_open=picks_open,
    )
    error = outcome if isinstance(outcome, PortalError) else None
    if not is_htmx(request):
        response = redirect(
            request, f"/submissions/{submission.id}" if back == "detail" else "/dashboard"
        )
        if error:
            flash(request, response, error.message, "error")
        return response
    view = await service.view_of(session, submission)
    return render(
        request,
        "partials/final_toggle_response.html",
        {
            "view": view,
            "picks_used": await service.count_picks(session, team),
            "picks_limit": limit,
            "error": error.message if error else None,
            "back": back,
            "picks_open": picks_open,
        },
        status_code=error.status_code if error else 200,
    )


@router.get("/submissions/{submission_id}/row")
async def submission_row(
    request: Request,
    session: SessionDep,
    submission: OwnSubmissionPage,
    picks_open: PicksOpenDep,
) -> Response:
    """One dashboard row, polled while its public evaluation is queued or running: the
    settled row is rendered without the trigger, so the polling stops by itself."""
    return render(
        request,
        "partials/submission_row.html",
        {
            "view": await service.view_of(session, submission),
            "picks_open": picks_open,
        },
    )


@router.get("/submissions/{submission_id}")
async def submission_page(
    request: Request,
    team: PageTeam,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    submission: OwnSubmissionPage,
    competition: CompetitionDep,
    picks_open: PicksOpenDep,
) -> Response:
    results = await service.results_with_runs(session, submission)
    live = any(run.status in service.PENDING for r in results for run in r.runs)
    context = {
        "team": team,
        "view": await service.view_of(session, submission),
        "results": results,
        "live": live,
        "current_public_batch_id": competition.public_batch_id,
        "picks_used": await service.count_picks(session, team),
        "picks_limit": settings.final_picks,
        "picks_open": picks_open,
    }
    if not is_htmx(request):
        chunks = await service.open_file(storage, submission)
        source = b"".join(chunks)
        context["source"] = source[:SOURCE_PREVIEW_BYTES].decode("utf-8", errors="replace")
        context["truncated"] = len(source) > SOURCE_PREVIEW_BYTES
    return render(request, "submission_detail.html", context, block="results_live")
