from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse

from portal.auth.deps import CurrentTeam
from portal.core.db import SessionDep
from portal.core.errors import PortalError
from portal.core.forms import form_action
from portal.core.pagination import Page, PageDep
from portal.core.text import FreeText
from portal.submissions import service
from portal.submissions.deps import OwnSubmission
from portal.submissions.schemas import (
    FinalPickState,
    QuotaPublic,
    SubmissionCreated,
    SubmissionDetail,
    SubmissionPublic,
)

router = APIRouter(prefix="/api/v1/submissions", tags=["submissions"])


def public(view: service.SubmissionView) -> SubmissionPublic:
    return SubmissionPublic(
        **view.submission.model_dump(
            include={"id", "filename", "note", "sha256", "size_bytes", "created_at", "is_final"}
        ),
        status=view.status,
        score=view.score,
    )


async def accept_upload(
    request: Request,
    session: SessionDep,
    team,
    upload: UploadFile | None,
    note: str,
) -> tuple[service.Submission, service.Quota] | PortalError:
    """Shared by the API and the dashboard form: the upload, or its refusal, audited.

    A form action (portal.core.forms): a refused upload leaves no row and takes no quota
    whether the API raises the refusal or the dashboard shows it. Every refusal here is a
    PortalError (a file over the size limit too), so both answer it the same way.
    """
    filename = upload.filename if upload else None

    async def upload_it() -> tuple[service.Submission, service.Quota]:
        if upload is None:
            raise service.InvalidSubmission("Choose a .py file to upload.", code="no_file")
        content = await upload.read(request.app.state.settings.max_upload_bytes + 1)
        return await service.upload(
            session,
            team=team,
            filename=filename,
            content=content,
            note=note,
            settings=request.app.state.settings,
            storage=request.app.state.storage,
            now=request.app.state.clock(),
        )

    outcome = await form_action(session, upload_it)
    if isinstance(outcome, PortalError):
        await service.record_refusal(request.app.state.sessionmaker, team, outcome, filename)
    return outcome


@router.post("", response_model=SubmissionCreated, status_code=201)
async def upload_submission(
    request: Request,
    team: CurrentTeam,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="One .py file, UTF-8")],
    note: Annotated[FreeText, Form(max_length=service.MAX_NOTE_CHARS)] = "",
):
    """Upload a solution. Costs one of today's uploads unless it is refused."""
    outcome = await accept_upload(request, session, team, file, note)
    if isinstance(outcome, PortalError):
        raise outcome
    submission, quota = outcome
    view = service.SubmissionView(submission, service.NOT_EVALUATED, None)
    return SubmissionCreated(**public(view).model_dump(), quota=QuotaPublic.model_validate(quota))


@router.get("", response_model=Page[SubmissionPublic])
async def list_submissions(team: CurrentTeam, session: SessionDep, page: PageDep):
    """Your submissions, newest first."""
    return (await service.list_for_team(session, team, page)).map(public)


@router.get("/quota", response_model=QuotaPublic)
async def read_quota(request: Request, team: CurrentTeam, session: SessionDep):
    quota = await service.quota_for(
        session, team, request.app.state.settings, request.app.state.clock()
    )
    return QuotaPublic.model_validate(quota)


@router.get("/{submission_id}", response_model=SubmissionDetail)
async def read_submission(submission: OwnSubmission, session: SessionDep):
    view = await service.view_of(session, submission)
    results = await service.results_by_batch(session, submission)
    return SubmissionDetail(**public(view).model_dump(), results=results)


@router.get("/{submission_id}/file", response_class=StreamingResponse)
async def download_submission(request: Request, submission: OwnSubmission):
    """The file as uploaded, as plain text (never rendered as HTML)."""
    chunks = await service.open_file(request.app.state.storage, submission)
    return StreamingResponse(
        chunks,
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="submission-{submission.id}.py"',
            "Content-Length": str(submission.size_bytes),
            "X-Content-Type-Options": "nosniff",
        },
    )


async def _toggle(request: Request, team, session, submission, final: bool) -> FinalPickState:
    limit = request.app.state.settings.final_picks
    used = await service.set_final(session, team, submission, final, limit=limit)
    return FinalPickState(
        submission_id=submission.id, is_final=final, picks_used=used, picks_limit=limit
    )


@router.put("/{submission_id}/final", response_model=FinalPickState)
async def pick_final(
    request: Request, team: CurrentTeam, session: SessionDep, submission: OwnSubmission
):
    """Mark as a final submission (idempotent); 409 past PORTAL_FINAL_PICKS."""
    return await _toggle(request, team, session, submission, True)


@router.delete("/{submission_id}/final", response_model=FinalPickState)
async def unpick_final(
    request: Request, team: CurrentTeam, session: SessionDep, submission: OwnSubmission
):
    """Unmark as a final submission (idempotent)."""
    return await _toggle(request, team, session, submission, False)
