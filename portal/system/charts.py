"""The System page's two charts, drawn by portal.core.chart: runs finished per minute by
status, and gateway calls per minute with the refused ones on top."""

from __future__ import annotations

from datetime import tzinfo

from portal.core.chart import Chart, Step, build
from portal.core.i18n import format_number
from portal.core.i18n import gettext as _
from portal.core.templating import status_name
from portal.system.schemas import FinishedRuns, GatewayRefusals

HEIGHT = 180


def finished(runs: FinishedRuns, timezone: tzinfo) -> Chart:
    steps = []
    for step in runs.series:
        local = step.start.astimezone(timezone)
        done = ", ".join(
            _(
                "%(count)s %(status)s",
                count=format_number(count),
                status=status_name(status),
            )
            for status, count in step.counts.items()
        )
        done = done or _("no runs finished")
        steps.append(
            Step(
                parts=[(status, step.counts.get(status, 0)) for status in runs.totals],
                label=f"{local:%H:%M}: {done}",
                axis_label=f"{local:%H:%M}",
            )
        )
    return build(steps, height=HEIGHT)


def gateway(calls: GatewayRefusals, timezone: tzinfo) -> Chart:
    steps = []
    for step in calls.series:
        local = step.start.astimezone(timezone)
        steps.append(
            Step(
                parts=[("served", step.calls - step.refused), ("refused", step.refused)],
                label=_(
                    "%(time)s: %(calls)s calls, %(refused)s refused",
                    time=local.strftime("%H:%M"),
                    calls=format_number(step.calls),
                    refused=format_number(step.refused),
                ),
                axis_label=f"{local:%H:%M}",
            )
        )
    return build(steps, height=HEIGHT)
