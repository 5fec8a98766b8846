"""How long ago, as the System page says it: the two largest units, never negative."""

import pytest

from portal.core.templating import humanize_age


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0 s"),
        (4.9, "4 s"),
        (60, "1 min"),
        (190, "3 min 10 s"),
        (7200, "2 h"),
        (7500, "2 h 5 min"),
        (86400 * 3 + 3600 * 4 + 59, "3 d 4 h"),
        (86400, "1 d"),
        (-12, "0 s"),  # a worker's clock ahead of ours
    ],
)
def test_ages_read_in_their_two_largest_units(seconds, shown):
    assert humanize_age(seconds) == shown
