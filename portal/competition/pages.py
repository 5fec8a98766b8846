"""The admin's competition page: settings, the phase timeline, the public batch, the
final evaluation (start, live progress) and the reveal. Every action is a plain form
(CSRF, POST, redirect), so the page works without JavaScript."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from portal.auth.deps import PageAdmin
from portal.competition import service
from portal.competition.deps import CompetitionActionsDep
from portal.competition.header import time_left
from portal.competition.models import Competition, Phase
from portal.competition.phases import CompetitionState
from portal.competition.settings_form import (
    SettingsRefused,
    form_values,
    labels,
    settings_update,
)
from portal.core.config import Settings
from portal.core.cookies import flash
from portal.core.db import SessionDep
from portal.core.deps import ClockDep, SettingsDep
from portal.core.errors import PortalError
from portal.core.forms import form_action
from portal.core.htmx import redirect
from portal.core.i18n import gettext as _
from portal.core.templating import local_time, render
from portal.evaluation import service as evaluation
from portal.evaluation.schemas import BatchProgress

router = APIRouter(include_in_schema=False)
PAGE = "/admin/competition"
# Plain `str`, not the boundary's checked text types: a refused value (a NUL in the
# name, a date that is not one) comes back in the form with the reason beside it,
# instead of the generic 422 page. settings_form checks every one of them.
FormText = Annotated[str, Form(max_length=2000)]


@dataclass(frozen=True)
class TimelineEntry:
    phase: Phase
    label: str
    at: datetime | None
    note: str
    state: str  # "done", "current" or "next"


def timeline(competition: Competition, phase: Phase) -> list[TimelineEntry]:
    entries = [
        (Phase.before, _("Before"), None, _("uploads refused")),
        (Phase.open, _("Open"), competition.starts_at, _("uploads scored on the public seeds")),
        (
            Phase.frozen,
            _("Frozen"),
            competition.freeze_at,
            _("others see the board as it was at the freeze")
            if competition.freeze_at
            else _("no freeze set"),
        ),
        (Phase.ended, _("Ended"), competition.ends_at, _("uploads refused; picks are final")),
        (
            Phase.final,
            _("Final evaluation"),
            competition.final_started_at,
            _("picks on private seeds"),
        ),
        (Phase.revealed, _("Revealed"), competition.revealed_at, _("the final board is public")),
    ]
    order = list(Phase)
    return [
        TimelineEntry(
            entry_phase,
            label,
            at,
            note,
            "current"
            if entry_phase == phase
            else "done"
            if order.index(entry_phase) < order.index(phase)
            else "next",
        )
        for entry_phase, label, at, note in entries
    ]


def start_final_blocked(
    competition: Competition, phase: Phase, now: datetime, timezone: str
) -> str | None:
    """Why the final evaluation cannot start now; None when it can."""
    if phase in (Phase.before, Phase.open, Phase.frozen):
        return _(
            "Available after the end, %(moment)s: in %(left)s.",
            moment=local_time(competition.ends_at, timezone),
            left=time_left((competition.ends_at - now).total_seconds()),
        )
    if phase in (Phase.final, Phase.revealed):
        return _("It has started already.")
    if not competition.private_seeds:
        return _("Set the private seeds first: the final evaluation runs the picks on them.")
    return None


def reveal_blocked(phase: Phase, progress: BatchProgress | None) -> str | None:
    """Why the results cannot be revealed now; None when they can."""
    if phase == Phase.revealed:
        return _("The results are revealed.")
    if phase != Phase.final or progress is None:
        return _("Start the final evaluation first; the reveal shows its results.")
    if progress.done < progress.total:
        return _(
            "The final evaluation is still running: %(done)s of %(total)s runs done.",
            done=progress.done,
            total=progress.total,
        )
    return None


async def _page(
    request: Request,
    session: AsyncSession,
    settings: Settings,
    now: datetime,
    *,
    form_error: str | None = None,
    typed: dict[str, str] | None = None,
    confirm_reveal: bool = False,
    status_code: int = 200,
) -> Response:
    competition = await service.load(session)
    phase = CompetitionState.model_validate(competition).phase(now)
    public_progress = (
        await evaluation.progress(session, competition.public_batch_id)
        if competition.public_batch_id
        else None
    )
    final_progress = (
        await evaluation.progress(session, competition.final_batch_id)
        if competition.final_batch_id
        else None
    )
    final_blocked = reveal_blocked(phase, final_progress)
    return render(
        request,
        "admin/competition.html",
        {
            "competition": competition,
            "phase": phase,
            "timeline": timeline(competition, phase),
            "values": typed or form_values(competition, settings.timezone),
            "labels": labels(),
            "form_error": form_error,
            "settings_locked": competition.final_started_at is not None,
            "uploads": await service.count_contenders_submissions(session),
            "public_progress": public_progress,
            "final_progress": final_progress,
            "final_live": phase == Phase.final and final_blocked is not None,
            "start_blocked": start_final_blocked(competition, phase, now, settings.timezone),
            "reveal_blocked": final_blocked,
            "confirm_reveal": confirm_reveal and final_blocked is None,
        },
        status_code=status_code,
        block="final_live",
    )


@router.get(PAGE)
async def competition_page(
    request: Request,
    admin: PageAdmin,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    confirm: Annotated[str, Query(pattern="^(reveal)?$", max_length=10)] = "",
) -> Response:
    return await _page(request, session, settings, clock(), confirm_reveal=confirm == "reveal")


@router.post(PAGE)
async def save_settings(
    request: Request,
    admin: PageAdmin,
    actions: CompetitionActionsDep,
    name: FormText = "",
    starts_at: FormText = "",
    freeze_at: FormText = "",
    ends_at: FormText = "",
    public_seeds: FormText = "",
    private_seeds: FormText = "",
) -> Response:
    session, settings, now = actions.session, actions.settings, actions.now
    typed = {
        "name": name,
        "starts_at": starts_at,
        "freeze_at": freeze_at,
        "ends_at": ends_at,
        "public_seeds": public_seeds,
        "private_seeds": private_seeds,
    }
    # Shown again as typed; a NUL cannot go into the page, its place is marked.
    shown = {field: value.replace("\x00", "\ufffd") for field, value in typed.items()}
    competition = await service.load(session)
    seeds_before = list(competition.public_seeds)
    try:
        data = settings_update(typed, competition, settings.timezone)
    except SettingsRefused as refusal:
        return await _page(
            request, session, settings, now, form_error=str(refusal), typed=shown, status_code=422
        )
    outcome = await form_action(session, actions.update, data, admin)
    if isinstance(outcome, PortalError):
        return await _page(
            request,
            session,
            settings,
            now,
            form_error=outcome.message,
            typed=shown,
            status_code=outcome.status_code,
        )
    response = redirect(request, PAGE)
    if outcome.public_seeds != seeds_before:
        message = _("Settings saved. Every upload is being scored again on the new public seeds.")
    else:
        message = _("Settings saved.")
    flash(request, response, message, "success")
    return response


@router.post(f"{PAGE}/final")
async def start_final(
    request: Request, admin: PageAdmin, actions: CompetitionActionsDep
) -> Response:
    response = redirect(request, PAGE)
    outcome = await form_action(actions.session, actions.start_final, admin)
    if isinstance(outcome, PortalError):
        flash(request, response, outcome.message, "error")
        return response
    flash(
        request,
        response,
        _("Final evaluation started: each team's picks run on the private seeds."),
        "success",
    )
    return response


@router.post(f"{PAGE}/reveal")
async def reveal(
    request: Request,
    admin: PageAdmin,
    actions: CompetitionActionsDep,
    confirmed: Annotated[bool, Form()] = False,
) -> Response:
    if not confirmed:
        # The reveal cannot be undone: the first press only asks (no JavaScript needed).
        return redirect(request, f"{PAGE}?confirm=reveal#reveal")
    response = redirect(request, PAGE)
    outcome = await form_action(actions.session, actions.reveal, admin)
    if isinstance(outcome, PortalError):
        flash(request, response, outcome.message, "error")
        return response
    flash(request, response, _("Results revealed: the final board is public."), "success")
    return response
