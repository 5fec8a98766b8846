"""The competition's phase and time left, in the header of every page.

The header is drawn by templates/base.html from `request.state.competition_header`,
which `show_phase_in_header` fills for full page renders only (HTMX fragments and the
JSON API skip it). The state comes from `service.current`, cached in Redis, so a page
costs one Redis read and no database query; portal/core knows nothing of it.

The badge lists the steps the clock still has to take ("Starts in", "Open · freezes in",
"Open · ends in", then "Ended"). static/app.js walks the same list every second, so the
badge counts down and moves on to the next step without reloading the page; it counts
from the server's clock (sent with the page), not the visitor's, which may be wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from fastapi import Depends, Request

from portal.competition import service
from portal.competition.models import Phase
from portal.competition.phases import CompetitionState
from portal.core.deps import ClockDep, RedisDep, SessionmakerDep
from portal.core.htmx import wants_fragment
from portal.core.i18n import format_datetime
from portal.core.i18n import gettext as _

HEADER_STATE = "competition_header"  # the attribute of request.state base.html reads
NOT_PAGES = ("/api/", "/llm/", "/static/")


@dataclass(frozen=True)
class Step:
    phase: Phase  # the phase while this step shows
    text: str  # "Open · ends in"; with `at`, the time left follows it
    at: datetime | None = None  # the instant the step ends; None for the last step
    moment: str = ""  # what happens at `at`: "Starts %(moment)s", "Freezes %(moment)s"…


def time_left(seconds: float) -> str:
    """'3 d 4 h', '2 h 10 min', '5 min 3 s', '42 s'. static/app.js `timeLeft` writes the
    same with the same words (templating.script_words), so the badge does not change its
    wording when the script takes over."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return _("%(days)s d %(hours)s h", days=days, hours=hours)
    if hours:
        return _("%(hours)s h %(minutes)s min", hours=hours, minutes=minutes)
    if minutes:
        return _("%(minutes)s min %(seconds)s s", minutes=minutes, seconds=secs)
    return _("%(seconds)s s", seconds=secs)


def clock_steps(state: CompetitionState) -> list[Step]:
    """Every step of the clock-driven phases, in order; the first whose `at` is still
    ahead is the current one (the same rule as `phase_at`)."""
    if state.revealed_at is not None:
        return [Step(Phase.revealed, _("Results revealed"))]
    if state.final_started_at is not None:
        return [Step(Phase.final, _("Final evaluation"))]
    frozen_before_end = state.freeze_at is not None and state.freeze_at < state.ends_at
    steps = [Step(Phase.before, _("Starts in"), state.starts_at, _("Starts %(moment)s"))]
    if frozen_before_end:
        steps.append(
            Step(Phase.open, _("Open · freezes in"), state.freeze_at, _("Freezes %(moment)s"))
        )
        steps.append(Step(Phase.frozen, _("Frozen · ends in"), state.ends_at, _("Ends %(moment)s")))
    else:
        steps.append(Step(Phase.open, _("Open · ends in"), state.ends_at, _("Ends %(moment)s")))
    steps.append(Step(Phase.ended, _("Ended")))
    return steps


@dataclass(frozen=True)
class PhaseHeader:
    steps: list[Step]
    now: datetime

    @property
    def current(self) -> Step:
        return next((s for s in self.steps if s.at is not None and s.at > self.now), self.steps[-1])

    @property
    def remaining(self) -> str:
        at = self.current.at
        return time_left((at - self.now).total_seconds()) if at else ""

    def title(self, step: Step, timezone: str) -> str:
        if step.at is None:
            return ""
        return step.moment % {"moment": format_datetime(step.at, timezone)}

    def steps_json(self, timezone: str) -> str:
        """The steps still to come, for static/app.js."""
        current = self.steps.index(self.current)
        return json.dumps(
            [
                {
                    "phase": step.phase.value,
                    "text": step.text,
                    "at": step.at.isoformat() if step.at else None,
                    "title": self.title(step, timezone),
                }
                for step in self.steps[current:]
            ],
            ensure_ascii=False,
        )


def phase_header(state: CompetitionState, now: datetime) -> PhaseHeader:
    return PhaseHeader(clock_steps(state), now)


async def show_phase_in_header(
    request: Request, sessionmaker: SessionmakerDep, redis: RedisDep, clock: ClockDep
) -> None:
    """Give a full page render the competition's phase (fragments and the API skip it).

    Every request of a page router resolves this, board polls included: it asks for no
    session, so those that skip it cost nothing."""
    if request.url.path.startswith(NOT_PAGES) or wants_fragment(request):
        return
    state = await service.current_or_load(redis, sessionmaker)
    setattr(request.state, HEADER_STATE, phase_header(state, clock()))


# For the routers that render pages: `include_router(..., dependencies=[PhaseInHeader])`.
PhaseInHeader = Depends(show_phase_in_header)
