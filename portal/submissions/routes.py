from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.deps import CurrentTeam
from portal.competition.deps import PicksOpenDep
from portal.core.config import Settings
from portal.core.db import SessionDep
from portal.core.deps import ClockDep, SettingsDep, StorageDep
from portal.core.errors import PortalError
from portal.core.pagination import Page, PageDep
from portal.core.text import FreeText
from portal.submissions import service
from portal.submissions.deps import OwnSubmission, UploaderDep
from portal.submissions.models import Submission
from portal.submissions.schemas import (
    BatchResultWithRuns,
    FinalPickState,
    QuotaPublic,
    SubmissionCreated,
    SubmissionDetail,
    SubmissionPublic,
)
from portal.teams.models import Team

router = APIRouter(prefix="/api/v1/submissions", tags=["submissions"])


def public(view: service.SubmissionView) -> SubmissionPublic:
    return SubmissionPublic(
        **view.submission.model_dump(
            include={"id", "filename", "note", "sha256", "size_bytes", "created_at", "is_final"}
        ),
        public_status=view.status,
        public_score=view.score,
        status=view.status,
        score=view.score,
    )


@router.post("", response_model=SubmissionCreated, status_code=201)
async def upload_submission(
    team: CurrentTeam,
    session: SessionDep,
    uploader: UploaderDep,
    file: Annotated[UploadFile, File(description="One .py file, UTF-8")],
    note: Annotated[FreeText, Form(max_length=service.MAX_NOTE_CHARS)] = "",
) -> SubmissionCreated:
    """Upload a solution. Costs one of today's uploads unless it is refused."""
    outcome = await uploader.accept(session, team, file, note)
    if isinstance(outcome, PortalError):
        raise outcome
    submission, quota = outcome
    # Read back: "queued" when the upload went to the public evaluation with it.
    view = await service.view_of(session, submission)
    return SubmissionCreated(**public(view).model_dump(), quota=QuotaPublic.model_validate(quota))


@router.get("", response_model=Page[SubmissionPublic])
async def list_submissions(
    team: CurrentTeam, session: SessionDep, page: PageDep
) -> Page[SubmissionPublic]:
    """Your submissions, newest first."""
    return (await service.list_for_team(session, team, page)).map(public)


@router.get("/quota", response_model=QuotaPublic)
async def read_quota(
    team: CurrentTeam, session: SessionDep, settings: SettingsDep, clock: ClockDep
) -> QuotaPublic:
    quota = await service.quota_for(session, team, settings, clock())
    return QuotaPublic.model_validate(quota)


@router.get("/{submission_id}", response_model=SubmissionDetail)
async def read_submission(submission: OwnSubmission, session: SessionDep) -> SubmissionDetail:
    view = await service.view_of(session, submission)
    results = await service.results_with_runs(session, submission, include_log=False)
    return SubmissionDetail(
        **public(view).model_dump(),
        results=[BatchResultWithRuns.model_validate(r, from_attributes=True) for r in results],
    )


@router.get("/{submission_id}/file", response_class=StreamingResponse)
async def download_submission(submission: OwnSubmission, storage: StorageDep) -> StreamingResponse:
    """The file as uploaded, as plain text (never rendered as HTML)."""
    chunks = await service.open_file(storage, submission)
    return StreamingResponse(
        chunks,
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="submission-{submission.id}.py"',
            "Content-Length": str(submission.size_bytes),
            "X-Content-Type-Options": "nosniff",
        },
    )


async def _toggle(
    team: Team,
    session: AsyncSession,
    settings: Settings,
    submission: Submission,
    final: bool,
    picks_open: bool,
) -> FinalPickState:
    limit = settings.final_picks
    used = await service.set_final(
        session, team, submission, final, limit=limit, picks_open=picks_open
    )
    return FinalPickState(
        submission_id=submission.id, is_final=final, picks_used=used, picks_limit=limit
    )


@router.put("/{submission_id}/final", response_model=FinalPickState)
async def pick_final(
    team: CurrentTeam,
    session: SessionDep,
    settings: SettingsDep,
    submission: OwnSubmission,
    picks_open: PicksOpenDep,
) -> FinalPickState:
    """Mark as a final submission (idempotent); 409 past PORTAL_FINAL_PICKS or after the
    competition's end."""
    return await _toggle(team, session, settings, submission, True, picks_open)


@router.delete("/{submission_id}/final", response_model=FinalPickState)
async def unpick_final(
    team: CurrentTeam,
    session: SessionDep,
    settings: SettingsDep,
    submission: OwnSubmission,
    picks_open: PicksOpenDep,
) -> FinalPickState:
    """Unmark as a final submission (idempotent); 409 after the competition's end."""
    return await _toggle(team, session, settings, submission, False, picks_open)
