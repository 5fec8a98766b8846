"""Where the login form may send a browser afterwards: only a path on this site."""

import pytest

from portal.auth.pages import NEXT_MAX_CHARS, safe_next


@pytest.mark.parametrize(
    "target",
    ["/dashboard", "/submissions/3?page=2", "/admin/batches/7#runs", "/leaderboard/projector"],
)
def test_a_path_on_this_site_is_kept_as_it_is(target):
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None,
        "",
        "dashboard",  # relative: resolved against /login by the browser
        "//evil.example",  # scheme-relative: another host
        "///evil.example",
        "/\\evil.example",  # browsers read a backslash as a slash
        "/\\/evil.example",
        "https://evil.example/dashboard",
        "javascript:alert(1)",
        "/\t/evil.example",  # browsers drop tabs and newlines, leaving //evil.example
        "/\n/evil.example",
        "/dash\x7fboard",
        "/dash\x00board",
    ],
)
def test_a_target_that_could_leave_the_site_is_refused(target):
    assert safe_next(target) is None


def test_a_path_longer_than_the_login_form_carries_is_refused():
    longest = "/" + "a" * (NEXT_MAX_CHARS - 1)
    assert safe_next(longest) == longest
    assert safe_next(longest + "a") is None
