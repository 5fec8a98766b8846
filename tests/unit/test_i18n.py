"""Which language a request reads, and words and figures written for it."""

from datetime import UTC, datetime

import pytest

from portal.core import i18n
from portal.core.templating import humanize_age, humanize_duration


@pytest.fixture
def korean():
    i18n.set_language("ko")
    yield
    i18n.set_language("en")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", "ko"),
        ("en-GB,en;q=0.9,ko;q=0.8", "en"),
        ("fr-FR, en;q=0.1", "en"),
        ("en;q=0.5, ko", "ko"),
        ("ko;q=0, en;q=0.2", "en"),  # q=0 means "not this one"
        ("fr, de", None),
        ("ko;q=banana", None),
        ("", None),
        (";;;,,,q=", None),
    ],
)
def test_accept_language_picks_the_readers_first_language_we_have(header, expected):
    assert i18n.parse_accept_language(header) == expected


def test_pages_follow_the_switch_then_the_browser_then_the_default():
    pick = i18n.language_for
    assert pick("/dashboard", "portal_lang=ko", "en", "en") == "ko"
    assert pick("/dashboard", "a=1; portal_lang=en; b=2", "ko", "ko") == "en"
    assert pick("/dashboard", "portal_lang=fr", "ko-KR", "en") == "ko"
    assert pick("/dashboard", "", "", "ko") == "ko"
    assert pick("/dashboard", "", "de", "en") == "en"


def test_the_api_is_english_unless_the_client_asks_whatever_the_cookie_says():
    pick = i18n.language_for
    assert pick("/api/v1/submissions", "portal_lang=ko", "", "ko") == "en"
    assert pick("/api/v1/submissions", "", "ko", "en") == "ko"
    assert pick("/llm/v1/chat/completions", "portal_lang=ko", "", "ko") == "en"


def test_dates_are_written_in_the_competitions_timezone_for_the_reader(korean):
    moment = datetime(2026, 11, 28, 5, 7, tzinfo=UTC)
    assert i18n.format_datetime(moment, "Asia/Seoul") == "2026. 11. 28. 14:07 KST"
    assert i18n.format_datetime(moment, "Asia/Seoul", "short") == "11월 28일 14:07"
    i18n.set_language("en")
    assert i18n.format_datetime(moment, "Asia/Seoul") == "Nov 28, 2026, 14:07 KST"
    assert i18n.format_datetime(moment, "Europe/Paris", "short") == "Nov 28, 06:07"


def test_durations_read_naturally_in_korean(korean):
    assert humanize_age(3 * 86400 + 4 * 3600) == "3일 4시간"
    assert humanize_age(190) == "3분 10초"
    assert humanize_duration(3 * 3600 + 5 * 60) == "3시간 5분 후"
    assert humanize_duration(20) == "1분 이내"


def test_numbers_are_grouped_for_the_reader(korean):
    assert i18n.format_number(1234567) == "1,234,567"
    assert i18n.format_number(2.5, 2) == "2.50"


def test_an_untranslated_message_falls_back_to_english(korean):
    assert i18n.gettext("A sentence nobody translated") == "A sentence nobody translated"
    assert i18n.gettext("Log out") == "로그아웃"


def test_the_quality_parameter_is_read_whatever_its_case():
    assert i18n.parse_accept_language("ko;Q=0.1, en;q=0.5") == "en"


async def test_a_header_sent_on_several_lines_counts_as_one_list():
    seen = []

    async def page(scope, receive, send):
        seen.append(i18n.current_language())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = i18n.LanguageMiddleware(page, default_language="en")
    for headers in (
        [(b"accept-language", b"ko"), (b"accept-language", b"en;q=0.5")],
        [(b"cookie", b"portal_lang=ko"), (b"cookie", b"other=1")],
    ):
        scope = {"type": "http", "path": "/dashboard", "headers": headers}

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            pass

        await app(scope, receive, send)
    assert seen == ["ko", "ko"]
