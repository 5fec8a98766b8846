"""The words of the header's countdown and the settings form's seeds and local times."""

from datetime import UTC, datetime, timedelta

import pytest

from portal.competition.header import clock_steps, phase_header, time_left
from portal.competition.phases import CompetitionState
from portal.competition.settings_form import SettingsRefused, format_seeds, parse_local
from portal.evaluation.pages import parse_seeds

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (3 * 86400 + 4 * 3600 + 59 * 60, "3 d 4 h"),
        (2 * 3600 + 10 * 60 + 59, "2 h 10 min"),
        (5 * 60, "5 min 0 s"),
        (42.9, "42 s"),
        (-3, "0 s"),
    ],
)
def test_time_left_says_the_two_largest_units(seconds, words):
    assert time_left(seconds) == words


@pytest.mark.parametrize(
    ("seeds", "text"),
    [
        ([1, 2, 3, 4, 5, 9], "1-5, 9"),
        ([7, 8], "7, 8"),
        ([9, 3, 4, 5], "9, 3-5"),  # order kept, so the list reads back the same
        ([], ""),
    ],
)
def test_seeds_are_written_as_ranges_that_read_back_to_the_same_list(seeds, text):
    assert format_seeds(seeds) == text
    assert parse_seeds(text) == seeds


def test_a_local_time_is_read_in_the_competition_timezone():
    assert parse_local("starts_at", "2030-07-01T09:00", "Europe/Paris") == datetime(
        2030, 7, 1, 7, 0, tzinfo=UTC
    )
    assert parse_local("freeze_at", "  ", "Europe/Paris") is None


def test_a_local_time_the_clocks_skip_is_refused_with_the_reason():
    with pytest.raises(SettingsRefused, match="does not exist in Europe/Paris"):
        parse_local("starts_at", "2030-03-31T02:30", "Europe/Paris")


def state(**fields) -> CompetitionState:
    values = {
        "name": "Cup",
        "starts_at": T0,
        "freeze_at": T0 + timedelta(days=1),
        "ends_at": T0 + timedelta(days=2),
        "public_seeds": [],
        "private_seeds": [],
        "public_batch_id": None,
        "final_batch_id": None,
        "final_started_at": None,
        "revealed_at": None,
        "updated_at": T0,
    }
    return CompetitionState(**(values | fields))


@pytest.mark.parametrize(
    ("offset", "phase", "text"),
    [
        (timedelta(minutes=-5), "before", "Starts in"),
        (timedelta(0), "open", "Open · freezes in"),
        (timedelta(days=1), "frozen", "Frozen · ends in"),
        (timedelta(days=2), "ended", "Ended"),
    ],
)
def test_the_header_step_matches_the_phase_at_every_boundary(offset, phase, text):
    competition = state()
    now = T0 + offset
    current = phase_header(competition, now).current
    assert competition.phase(now) == phase == current.phase
    assert current.text == text


def test_without_a_freeze_the_open_phase_counts_down_to_the_end():
    steps = clock_steps(state(freeze_at=None))
    assert [s.text for s in steps] == ["Starts in", "Open · ends in", "Ended"]
