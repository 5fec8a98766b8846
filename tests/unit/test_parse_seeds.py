"""The seeds field of the batch form: what an organizer may type and what they are told."""

import pytest

from portal.evaluation.pages import parse_seeds
from portal.evaluation.schemas import MAX_SEEDS


@pytest.mark.parametrize(
    ("typed", "seeds"),
    [
        ("1, 2, 3", [1, 2, 3]),
        ("1,2,3", [1, 2, 3]),
        ("1 2   3", [1, 2, 3]),
        ("1-5", [1, 2, 3, 4, 5]),
        ("1-3, 7, 10-11", [1, 2, 3, 7, 10, 11]),
        ("4-4", [4]),
        ("0", [0]),
    ],
)
def test_lists_ranges_and_mixes_give_the_seeds_in_the_order_typed(typed, seeds):
    assert parse_seeds(typed) == seeds


@pytest.mark.parametrize("part", ["abc", "3-1", "1-", "-5", "1.5", "1-2-3", "²", "\uff11", "+3"])
def test_a_part_that_is_not_a_seed_is_named_with_an_example_of_what_works(part):
    with pytest.raises(ValueError) as refused:
        parse_seeds(f"1, {part}, 2")
    assert str(refused.value) == f"'{part}' is not a seed; write numbers like 1, 2, 3 or 1-5"


def test_a_range_of_the_most_seeds_a_batch_runs_is_accepted():
    assert parse_seeds(f"1-{MAX_SEEDS}") == list(range(1, MAX_SEEDS + 1))


@pytest.mark.parametrize("part", [f"1-{MAX_SEEDS + 1}", "0-999999999999"])
def test_a_range_longer_than_a_batch_runs_is_refused_before_it_is_built(part):
    with pytest.raises(ValueError) as refused:
        parse_seeds(part)
    assert str(refused.value) == f"'{part}' is more than {MAX_SEEDS} seeds, the most a batch runs"


def test_more_seeds_than_a_batch_runs_in_several_ranges_is_refused_in_words():
    with pytest.raises(ValueError, match="more than 50 seeds"):
        parse_seeds("0-49, 50-99")
