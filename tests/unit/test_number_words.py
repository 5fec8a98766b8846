"""Numbers as the budget pages show them, and read back from the limits form."""

import pytest

from portal.core.params import grouped_whole_number
from portal.core.templating import compact_number


@pytest.mark.parametrize(
    ("number", "shown"),
    [
        (0, "0"),
        (950, "950"),
        (1_000, "1k"),
        (1_500, "1.5k"),
        (100_000, "100k"),
        (999_999, "1M"),  # rounds up into the next unit, never "1000k"
        (2_000_000, "2M"),
        (1_000_000_000, "1B"),
        (1_000_000_000_000, "1T"),
        (5_000_000_000_000_000, "5000T"),
    ],
)
def test_a_budget_in_a_tight_column_reads_in_a_few_characters(number, shown):
    assert compact_number(number) == shown


@pytest.mark.parametrize(
    ("typed", "number"),
    [
        ("100,000", 100_000),
        ("100 000", 100_000),
        ("1_000_000", 1_000_000),
        (" 42 ", 42),
        ("1,5", None),  # a decimal comma is not a thousands separator
        ("1,000_000", None),  # one separator throughout
        ("10,0000", None),
        ("-1", None),
        ("2e6", None),
    ],
)
def test_the_limits_form_takes_numbers_grouped_as_the_page_shows_them(typed, number):
    assert grouped_whole_number(typed) == number
