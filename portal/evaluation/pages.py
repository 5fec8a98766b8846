"""Admin batch pages: list and create, detail with a live progress bar and run table."""

from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.deps import PageAdmin
from portal.core.cookies import flash
from portal.core.db import SessionDep
from portal.core.deps import BrokerDep, SettingsDep
from portal.core.errors import PortalError, validation_summary
from portal.core.forms import form_action
from portal.core.htmx import redirect
from portal.core.i18n import gettext as _
from portal.core.pagination import MAX_PAGE, MAX_ROW_ID, PageParams
from portal.core.params import whole_number
from portal.core.templating import render, templates
from portal.core.text import FreeText, NameText
from portal.evaluation import accounting, service, words
from portal.evaluation.models import BatchStatus, EvaluationBatch
from portal.evaluation.schemas import MAX_SEEDS, BatchCreate

# Where a page shows a run's log, its reason leaves out the lines the log ends with.
templates.env.filters["beside_log"] = accounting.reason_beside_log

router = APIRouter(include_in_schema=False)
BatchId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
RunId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
words.register_filters()


def parse_seeds(text: str) -> list[int]:
    """'1, 2, 3' or '1-5' or a mix; a clear error for anything else."""
    seeds: list[int] = []
    for part in text.replace(",", " ").split():
        first, dash, last = part.partition("-")
        start, end = whole_number(first), whole_number(last)
        if not dash and start is not None:
            seeds.append(start)
        elif dash and start is not None and end is not None and start <= end:
            if end - start >= MAX_SEEDS:
                # Said before the range is built: '0-999999999999' would fill the memory.
                raise ValueError(
                    _(
                        "'%(part)s' is more than %(most)s seeds, the most a batch runs",
                        part=part,
                        most=MAX_SEEDS,
                    )
                )
            seeds.extend(range(start, end + 1))
        else:
            raise ValueError(
                _("'%(part)s' is not a seed; write numbers like 1, 2, 3 or 1-5", part=part)
            )
        if len(seeds) > MAX_SEEDS:
            # Checked as the list grows, so many short ranges cannot fill the memory either.
            raise ValueError(
                _("that is more than %(most)s seeds, the most a run set may hold", most=MAX_SEEDS)
            )
    return seeds


@router.get("/admin/batches")
async def batches_page(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
) -> Response:
    return await _list(request, session, page)


async def _list(
    request: Request,
    session: AsyncSession,
    page: int = 1,
    *,
    form_error: str | None = None,
    form_values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    result = await service.list_batches(session, PageParams(page=page, size=20))
    progress = await service.progress_of(session, [batch.id for batch in result.items])
    return render(
        request,
        "admin/batches.html",
        {
            "batches": result,
            "progress": progress,
            "form_error": form_error,
            "form_values": form_values or {"seeds": "1-3", "selection": "final_picks"},
        },
        status_code=status_code,
    )


@router.post("/admin/batches")
async def create_batch_submit(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    settings: SettingsDep,
    broker: BrokerDep,
    name: Annotated[NameText, Form(max_length=200)] = "",
    seeds: Annotated[FreeText, Form(max_length=2000)] = "",
    selection: Annotated[NameText, Form(max_length=20)] = "final_picks",
    start_now: Annotated[bool, Form()] = False,
) -> Response:
    values = {"name": name, "seeds": seeds, "selection": selection}
    try:
        data = BatchCreate(name=name, seeds=parse_seeds(seeds), selection=selection)
    except ValidationError as exc:
        return await _list(
            request,
            session,
            form_error=validation_summary(exc),
            form_values=values,
            status_code=422,
        )
    except ValueError as exc:
        return await _list(
            request, session, form_error=str(exc), form_values=values, status_code=422
        )

    async def create_and_maybe_start() -> EvaluationBatch:
        # One action: a start that fails leaves no draft batch behind the error.
        batch = await service.create(session, data, actor=admin, kit=settings.eval_kit)
        if start_now:
            await service.start(session, batch.id, actor=admin, broker=broker)
        return batch

    batch = await form_action(session, create_and_maybe_start)
    if isinstance(batch, PortalError):
        return await _list(
            request,
            session,
            form_error=batch.message,
            form_values=values,
            status_code=batch.status_code,
        )
    response = redirect(request, f"/admin/batches/{batch.id}")
    if start_now:
        message = _("Batch “%(name)s” started.", name=batch.name)
    else:
        message = _("Batch “%(name)s” created.", name=batch.name)
    flash(request, response, message, "success")
    return response


@router.get("/admin/batches/{batch_id}")
async def batch_page(
    request: Request, batch_id: BatchId, admin: PageAdmin, session: SessionDep
) -> Response:
    batch = await service.get(session, batch_id)
    return render(
        request,
        "admin/batch_detail.html",
        {
            "batch": batch,
            "progress": await service.progress(session, batch.id),
            "runs": await service.list_runs(session, batch.id),
            "totals": await service.totals(session, batch.id),
            "live": batch.status == BatchStatus.running,
        },
        block="batch_live",
    )


@router.get("/admin/runs/{run_id}/log")
async def run_log_page(
    request: Request, run_id: RunId, admin: PageAdmin, session: SessionDep
) -> Response:
    """A run's whole kept log (head and tail of a long one, the cut marked), with what
    the run cost: any run, a private one included, so admins only."""
    run = await service.get_run(session, run_id)
    return render(
        request,
        "admin/run_log.html",
        {"run": run, "log_parts": accounting.log_parts(run.log or "")},
    )


@router.get("/admin/runs/{run_id}/log.txt")
async def run_log_download(run_id: RunId, admin: PageAdmin, session: SessionDep) -> Response:
    """The kept log as stored, as plain text to save (never rendered as HTML)."""
    run = await service.get_run(session, run_id)
    return Response(
        run.log or "",
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="run-{run.id}-log.txt"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post("/admin/batches/{batch_id}/{action}")
async def batch_action(
    request: Request,
    batch_id: BatchId,
    admin: PageAdmin,
    session: SessionDep,
    broker: BrokerDep,
    action: Annotated[str, Path(pattern="^(start|cancel|rerun-failed)$")],
) -> Response:
    response = redirect(request, f"/admin/batches/{batch_id}")
    perform = {
        "start": service.start,
        "cancel": service.cancel,
        "rerun-failed": service.rerun_failed,
    }[action]
    outcome = await form_action(session, perform, session, batch_id, actor=admin, broker=broker)
    if isinstance(outcome, PortalError):
        flash(request, response, outcome.message, "error")
        return response
    done = {
        "start": _("Batch #%(id)s started.", id=batch_id),
        "cancel": _("Batch #%(id)s cancelled.", id=batch_id),
        "rerun-failed": _("Batch #%(id)s: failed runs re-queued.", id=batch_id),
    }
    flash(request, response, done[action], "success")
    return response
