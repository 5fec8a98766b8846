from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.deps import AdminTeam
from portal.core.db import SessionDep
from portal.core.deps import BrokerDep, SettingsDep
from portal.core.pagination import MAX_ROW_ID, Page, PageDep
from portal.evaluation import service
from portal.evaluation.models import EvaluationBatch
from portal.evaluation.schemas import BatchCreate, BatchDetail, BatchProgress, BatchPublic

router = APIRouter(prefix="/api/v1/batches", tags=["batches"])
BatchId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


async def public(session: AsyncSession, batch: EvaluationBatch) -> BatchPublic:
    return with_progress(batch, await service.progress(session, batch.id))


def with_progress(batch: EvaluationBatch, progress: BatchProgress) -> BatchPublic:
    return BatchPublic(
        **batch.model_dump(
            include={
                "id",
                "name",
                "seeds",
                "selection",
                "kind",
                "kit",
                "status",
                "created_at",
                "started_at",
                "finished_at",
            }
        ),
        progress=progress,
    )


@router.get("", response_model=Page[BatchPublic])
async def list_batches(admin: AdminTeam, session: SessionDep, page: PageDep) -> Page[BatchPublic]:
    result = await service.list_batches(session, page)
    progress = await service.progress_of(session, [batch.id for batch in result.items])
    return result.map(lambda batch: with_progress(batch, progress[batch.id]))


@router.post("", response_model=BatchPublic, status_code=201)
async def create_batch(
    body: BatchCreate, admin: AdminTeam, session: SessionDep, settings: SettingsDep
) -> BatchPublic:
    """Create a draft batch; start it to queue its runs."""
    batch = await service.create(session, body, actor=admin, kit=settings.eval_kit)
    return await public(session, batch)


@router.get("/{batch_id}", response_model=BatchDetail)
async def read_batch(batch_id: BatchId, admin: AdminTeam, session: SessionDep) -> BatchDetail:
    batch = await service.get(session, batch_id)
    runs = await service.list_runs(session, batch.id)
    return BatchDetail(
        **(await public(session, batch)).model_dump(),
        runs=runs,
        totals=await service.totals(session, batch.id),
    )


@router.post("/{batch_id}/start", response_model=BatchPublic)
async def start_batch(
    batch_id: BatchId, admin: AdminTeam, session: SessionDep, broker: BrokerDep
) -> BatchPublic:
    batch = await service.start(session, batch_id, actor=admin, broker=broker)
    return await public(session, batch)


@router.post("/{batch_id}/cancel", response_model=BatchPublic)
async def cancel_batch(
    batch_id: BatchId, admin: AdminTeam, session: SessionDep, broker: BrokerDep
) -> BatchPublic:
    batch = await service.cancel(session, batch_id, actor=admin, broker=broker)
    return await public(session, batch)


@router.post("/{batch_id}/rerun-failed", response_model=BatchPublic)
async def rerun_failed(
    batch_id: BatchId, admin: AdminTeam, session: SessionDep, broker: BrokerDep
) -> BatchPublic:
    """Queue the batch's failed runs again (the same runs: never a duplicate)."""
    batch = await service.rerun_failed(session, batch_id, actor=admin, broker=broker)
    return await public(session, batch)
