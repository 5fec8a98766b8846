"""Geometry for the server-rendered usage chart (templates/partials/usage_chart.html).

Bars: calls per minute in each step, the refused part stacked in red on top of the
allowed (and failed) part. Line: tokens per minute, on its own scale at the right.
Computed here so the template only places shapes and the page needs no script.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo

from portal.llm.service import UsageReport

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 56, 12, 28


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    served_y: float
    served_height: float
    refused_y: float
    refused_height: float
    label: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    bars: list[Bar]
    token_points: str
    calls_max: float
    tokens_max: float
    x_labels: list[tuple[float, str]]
    empty: bool


def _nice_ceiling(value: float) -> float:
    """1, 2, 5 x 10^n at or above value, so the axis reads in round numbers."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 0.1
    for factor in (1, 2, 5, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def build(report: UsageReport, timezone: tzinfo) -> Chart:
    buckets = report.buckets
    step = report.step_minutes
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    base = TOP + plot_height
    slot = plot_width / max(len(buckets), 1)
    calls_max = _nice_ceiling(max((b.calls / step for b in buckets), default=0))
    tokens_max = _nice_ceiling(max((b.tokens / step for b in buckets), default=0))

    bars, points = [], []
    for index, bucket in enumerate(buckets):
        x = LEFT + index * slot
        served = (bucket.calls - bucket.refused) / step / calls_max * plot_height
        refused = bucket.refused / step / calls_max * plot_height
        local = bucket.start.astimezone(timezone).strftime("%d %b %H:%M")
        label = (
            f"{local}: {bucket.calls} calls ({bucket.refused} refused), "
            f"{bucket.tokens} tokens in {step} min"
        )
        bars.append(
            Bar(
                x=round(x + slot * 0.1, 1),
                width=round(max(slot * 0.8, 1), 1),
                served_y=round(base - served, 1),
                served_height=round(served, 1),
                refused_y=round(base - served - refused, 1),
                refused_height=round(refused, 1),
                label=label,
            )
        )
        y = base - bucket.tokens / step / tokens_max * plot_height
        points.append(f"{x + slot / 2:.1f},{y:.1f}")

    label_every = max(len(buckets) // 6, 1)
    time_format = "%H:%M" if report.window != "all" or step < 1440 else "%d %b"
    x_labels = [
        (
            round(LEFT + index * slot + slot / 2, 1),
            bucket.start.astimezone(timezone).strftime(time_format),
        )
        for index, bucket in enumerate(buckets)
        if index % label_every == 0
    ]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        plot_top=TOP,
        plot_bottom=base,
        bars=bars,
        token_points=" ".join(points),
        calls_max=calls_max,
        tokens_max=tokens_max,
        x_labels=x_labels,
        empty=report.totals.calls == 0,
    )
