"""The usage chart (templates/partials/usage_chart.html), drawn by portal.core.chart.

Bars: calls per minute in each step, the refused part stacked in red on top of the
allowed (and failed) part. Line: tokens per minute, on its own scale at the right.
"""

from __future__ import annotations

from datetime import tzinfo

from portal.core.chart import Chart, Step, build
from portal.core.i18n import format_datetime, format_number
from portal.core.i18n import gettext as _
from portal.llm.service import UsageReport


def usage(report: UsageReport, timezone: tzinfo) -> Chart:
    step = report.step_minutes
    time_format = "%H:%M" if report.window != "all" or step < 1440 else "%d %b"
    steps = []
    for bucket in report.buckets:
        local = bucket.start.astimezone(timezone)
        steps.append(
            Step(
                parts=(
                    ("served", (bucket.calls - bucket.refused) / step),
                    ("refused", bucket.refused / step),
                ),
                label=_(
                    "%(at)s: %(calls)s calls (%(refused)s refused), %(tokens)s tokens in "
                    "%(minutes)s min",
                    at=format_datetime(local, timezone, "short"),
                    calls=format_number(bucket.calls),
                    refused=format_number(bucket.refused),
                    tokens=format_number(bucket.tokens),
                    minutes=step,
                ),
                axis_label=local.strftime(time_format),
                line_value=bucket.tokens / step,
            )
        )
    return build(steps, with_line=True)
