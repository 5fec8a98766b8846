"""The usage chart's geometry: bars for calls, a line for tokens, round axis numbers."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from portal.core import chart
from portal.llm.chart import usage
from portal.llm.service import Bucket, Totals, UsageReport, Window

NOON = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
PLOT_HEIGHT = chart.HEIGHT - chart.TOP - chart.BOTTOM
PLOT_WIDTH = chart.WIDTH - chart.LEFT - chart.RIGHT
BASE = chart.TOP + PLOT_HEIGHT


def report(buckets: list[Bucket], *, step_minutes: int = 1, window=Window.hour) -> UsageReport:
    totals = Totals(calls=sum(bucket.calls for bucket in buckets))
    return UsageReport(
        window=window,
        since=NOON,
        until=NOON + timedelta(hours=1),
        step_minutes=step_minutes,
        totals=totals,
        buckets=buckets,
    )


def test_no_usage_draws_an_empty_chart_with_axes_from_zero_to_one():
    drawn = usage(report([]), UTC)
    assert drawn.empty
    assert drawn.bars == []
    assert drawn.line_points == ""
    assert drawn.x_labels == []
    assert (drawn.y_max, drawn.line_max) == (1.0, 1.0)


def test_buckets_without_calls_draw_flat_bars_and_a_line_on_the_axis():
    drawn = usage(report([Bucket(start=NOON), Bucket(start=NOON)]), UTC)
    assert drawn.empty
    assert [sum(s.height for s in bar.segments) for bar in drawn.bars] == [0, 0]
    assert [point.split(",")[1] for point in drawn.line_points.split()] == [f"{BASE:.1f}"] * 2


def test_one_bucket_fills_the_plot_and_stacks_refused_calls_on_the_allowed_ones():
    bucket = Bucket(start=NOON, calls=3, refused=1, prompt_tokens=30, completion_tokens=10)
    drawn = usage(report([bucket]), UTC)
    (bar,) = drawn.bars
    assert not drawn.empty
    # 3 calls a minute on an axis up to 5: two allowed (72 px), one refused (36 px) above.
    assert drawn.y_max == 5
    assert (bar.segment("served").height, bar.segment("refused").height) == (72.0, 36.0)
    assert bar.segment("served").y == BASE - 72
    assert bar.segment("refused").y == bar.segment("served").y - bar.segment("refused").height
    assert bar.x == chart.LEFT + PLOT_WIDTH * 0.1
    assert bar.width == PLOT_WIDTH * 0.8
    # 40 tokens a minute on an axis up to 50: the one point, in the middle of the plot.
    assert drawn.line_max == 50
    assert drawn.line_points == f"{chart.LEFT + PLOT_WIDTH / 2:.1f},{BASE - 144:.1f}"
    assert bar.label == "Jun 1, 12:00: 3 calls (1 refused), 40 tokens in 1 min"


def test_the_busiest_bucket_stays_inside_the_plot():
    buckets = [Bucket(start=NOON + timedelta(minutes=n), calls=n) for n in range(1, 8)]
    drawn = usage(report(buckets), UTC)
    assert min(segment.y for bar in drawn.bars for segment in bar.segments) >= chart.TOP
    assert max(bar.x + bar.width for bar in drawn.bars) <= chart.WIDTH - chart.RIGHT


def test_a_wider_step_shows_calls_and_tokens_per_minute():
    bucket = Bucket(start=NOON, calls=50, prompt_tokens=500)
    drawn = usage(report([bucket], step_minutes=5), UTC)
    # 10 calls and 100 tokens a minute, each exactly at its axis maximum.
    assert (drawn.y_max, drawn.line_max) == (10, 100)
    assert drawn.bars[0].segment("served").height == PLOT_HEIGHT
    assert drawn.bars[0].label.endswith("50 calls (0 refused), 500 tokens in 5 min")


@pytest.mark.parametrize(
    ("calls", "axis"), [(1, 1), (2, 2), (3, 5), (7, 10), (11, 20), (101, 200), (999, 1000)]
)
def test_the_calls_axis_ends_on_a_round_number(calls, axis):
    drawn = usage(report([Bucket(start=NOON, calls=calls)]), UTC)
    assert drawn.y_max == axis


def test_labels_show_the_viewers_local_time():
    helsinki_summer = timezone(timedelta(hours=3))
    drawn = usage(report([Bucket(start=NOON, calls=1)]), helsinki_summer)
    assert drawn.x_labels == [(round(chart.LEFT + PLOT_WIDTH / 2, 1), "15:00")]
    assert drawn.bars[0].label.startswith("Jun 1, 15:00:")


def test_a_long_window_labels_about_six_buckets():
    buckets = [Bucket(start=NOON + timedelta(minutes=n)) for n in range(60)]
    drawn = usage(report(buckets), UTC)
    assert [label for _, label in drawn.x_labels] == [
        "12:00", "12:10", "12:20", "12:30", "12:40", "12:50",
    ]  # fmt: skip


def test_the_all_time_chart_in_days_labels_dates():
    days = [Bucket(start=NOON + timedelta(days=n), calls=1) for n in range(2)]
    drawn = usage(report(days, step_minutes=1440, window=Window.all), UTC)
    assert [label for _, label in drawn.x_labels] == ["01 Jun", "02 Jun"]
