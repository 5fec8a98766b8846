from typing import Annotated

from fastapi import Depends, Path

from portal.auth.deps import CurrentTeam, PageTeam
from portal.core.db import SessionDep
from portal.core.pagination import MAX_ROW_ID
from portal.submissions import service
from portal.submissions.models import Submission

SubmissionId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


async def load_own_submission(
    team: CurrentTeam, session: SessionDep, submission_id: SubmissionId
) -> Submission:
    return await service.get_own(session, team, submission_id)


async def load_own_submission_page(
    team: PageTeam, session: SessionDep, submission_id: SubmissionId
) -> Submission:
    return await service.get_own(session, team, submission_id)


# 404 unless the submission is the caller's: authorization happens here, once.
OwnSubmission = Annotated[Submission, Depends(load_own_submission)]
OwnSubmissionPage = Annotated[Submission, Depends(load_own_submission_page)]
