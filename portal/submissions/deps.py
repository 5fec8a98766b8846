from typing import Annotated

from fastapi import Depends, Path, UploadFile
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.deps import CurrentTeam, PageTeam
from portal.competition import service as competition
from portal.competition.deps import CompetitionDep
from portal.core import metrics
from portal.core.db import SessionDep, after_commit
from portal.core.deps import BrokerDep, ClockDep, SessionmakerDep, SettingsDep, StorageDep
from portal.core.errors import PortalError
from portal.core.forms import form_action
from portal.core.i18n import gettext as _
from portal.core.pagination import MAX_ROW_ID
from portal.submissions import service
from portal.submissions.models import Submission
from portal.teams.models import Team

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


class Uploader:
    """Takes an upload for the API and the dashboard form alike: the upload, or its
    refusal, audited.

    A form action (portal.core.forms): a refused upload leaves no row and takes no quota
    whether the API raises the refusal or the dashboard shows it. Every refusal here is a
    PortalError (a file over the size limit too), so both answer it the same way.
    """

    def __init__(
        self,
        settings: SettingsDep,
        storage: StorageDep,
        clock: ClockDep,
        sessionmaker: SessionmakerDep,
        broker: BrokerDep,
        competition: CompetitionDep,
    ) -> None:
        self.broker = broker
        self.competition = competition
        self.settings = settings
        self.storage = storage
        self.clock = clock
        self.sessionmaker = sessionmaker

    async def accept(
        self, session: AsyncSession, team: Team, upload: UploadFile | None, note: str
    ) -> tuple[Submission, service.Quota] | PortalError:
        filename = upload.filename if upload else None

        async def upload_it() -> tuple[Submission, service.Quota]:
            if upload is None:
                raise service.InvalidSubmission(_("Choose a .py file to upload."), code="no_file")
            now = self.clock()
            # Outside the window nothing is read, stored or counted.
            competition.check_upload_window(self.competition, now)
            content = await upload.read(self.settings.max_upload_bytes + 1)
            submission, quota = await service.upload(
                session,
                team=team,
                filename=filename,
                content=content,
                note=note,
                settings=self.settings,
                storage=self.storage,
                now=now,
            )
            # Scored on the public seeds at once: the runs go to the workers on commit.
            await competition.queue_public_evaluation(session, submission, self.broker)
            return submission, quota

        outcome = await form_action(session, upload_it)
        if isinstance(outcome, PortalError):
            metrics.count_upload(outcome.code)
            await service.record_refusal(self.sessionmaker, team, outcome, filename)
        else:
            # Counted once it is kept: a request whose commit fails accepted nothing.
            after_commit(session, lambda: metrics.count_upload(None))
        return outcome


UploaderDep = Annotated[Uploader, Depends()]
