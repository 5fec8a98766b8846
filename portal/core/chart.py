"""Geometry for small server-rendered bar charts (templates/partials/bar_chart.html).

One bar per time step, its parts stacked bottom to top (each part a named series, drawn
with that series' CSS class), and an optional line on its own scale at the right.
Computed here so the templates only place shapes and the pages need no script. The LLM
usage pages (calls, refused calls, tokens) and the System page (runs finished by
status, gateway refusals) draw with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 56, 12, 28
# Without a line there is no right-hand scale to leave room for.
RIGHT_WITHOUT_LINE = 12
X_LABELS = 6  # about this many time labels under the bars


@dataclass(frozen=True)
class Step:
    """One time step to draw: its parts bottom to top as (series, value), the tooltip,
    the text under the axis, and the line's value if the chart has a line."""

    parts: Sequence[tuple[str, float]]
    label: str
    axis_label: str
    line_value: float | None = None


@dataclass(frozen=True)
class Segment:
    series: str
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    segments: list[Segment]
    label: str

    def segment(self, series: str) -> Segment:
        """The bar's part of `series`; none high, on top of the stack, when it has none."""
        top = min((s.y for s in self.segments), default=0.0)
        return next((s for s in self.segments if s.series == series), Segment(series, top, 0))


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    bars: list[Bar]
    y_max: float
    x_labels: list[tuple[float, str]]
    empty: bool
    line_points: str = ""
    line_max: float = 0.0
    series: list[str] = field(default_factory=list)


def nice_ceiling(value: float) -> float:
    """1, 2, 5 x 10^n at or above value, so the axis reads in round numbers."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10 if value >= 1 else 0.1
    for factor in (1, 2, 5, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def build(steps: Sequence[Step], *, with_line: bool = False, height: int = HEIGHT) -> Chart:
    right = RIGHT if with_line else RIGHT_WITHOUT_LINE
    plot_width = WIDTH - LEFT - right
    plot_height = height - TOP - BOTTOM
    base = TOP + plot_height
    slot = plot_width / max(len(steps), 1)
    y_max = nice_ceiling(max((sum(v for _, v in step.parts) for step in steps), default=0))
    line_max = nice_ceiling(max((step.line_value or 0 for step in steps), default=0))

    bars, points, series = [], [], []
    for index, step in enumerate(steps):
        x = LEFT + index * slot
        segments, top = [], float(base)
        for name, value in step.parts:
            if name not in series:
                series.append(name)
            if value <= 0:
                continue
            part = value / y_max * plot_height
            segments.append(Segment(name, round(top - part, 1), round(part, 1)))
            top -= part
        bars.append(
            Bar(
                x=round(x + slot * 0.1, 1),
                width=round(max(slot * 0.8, 1), 1),
                segments=segments,
                label=step.label,
            )
        )
        if with_line:
            y = base - (step.line_value or 0) / line_max * plot_height
            points.append(f"{x + slot / 2:.1f},{y:.1f}")

    label_every = max(len(steps) // X_LABELS, 1)
    x_labels = [
        (round(LEFT + index * slot + slot / 2, 1), step.axis_label)
        for index, step in enumerate(steps)
        if index % label_every == 0
    ]
    return Chart(
        width=WIDTH,
        height=height,
        plot_left=LEFT,
        plot_right=WIDTH - right,
        plot_top=TOP,
        plot_bottom=base,
        bars=bars,
        y_max=y_max,
        x_labels=x_labels,
        empty=not any(bar.segments for bar in bars),
        line_points=" ".join(points),
        line_max=line_max if with_line else 0.0,
        series=series,
    )
