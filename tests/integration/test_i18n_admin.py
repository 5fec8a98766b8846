"""The admin side in Korean: every admin page, its flash messages and refusals, and the
header's phase clock read in Korean for a reader who chose it; the API says the same
refusal in English unless the client asks for Korean with Accept-Language."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.fixtures.competition import configure, header_badge, set_clock
from tests.fixtures.factories import browser_login

T0 = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


async def korean_admin(client, teams) -> str:
    """Log an admin in and switch the pages to Korean; the session's CSRF token."""
    admin = await teams.admin(name="Organizers")
    csrf = await browser_login(client, admin)
    await client.post("/language", data={"language": "ko", "next": "/", "csrf_token": csrf})
    assert client.cookies.get("portal_lang") == "ko"
    return csrf


async def draft_batch(client, csrf: str) -> str:
    """Create a batch that is not started; its page's path."""
    created = await client.post(
        "/admin/batches",
        data={"name": "Round 1", "seeds": "1-3", "selection": "final_picks", "csrf_token": csrf},
    )
    assert created.status_code == 303, created.text
    return created.headers["location"]


@pytest.mark.parametrize(
    ("path", "korean", "english"),
    [
        (
            "/admin/teams",
            ["팀 만들기", "토큰 재발급", "일일 제출 한도"],
            ["Create team", "Rotate token"],
        ),
        (
            "/admin/batches",
            ["평가 배치", "배치 만들기", "바로 시작"],
            ["Create batch", "Which submissions"],
        ),
        (
            "/admin/competition",
            ["설정 저장", "최종 평가 시작", "비공개 시드", "시작 전"],
            ["Save settings", "Start final evaluation", "Private seeds"],
        ),
        ("/admin/usage", ["전체 팀 LLM 사용량", "모든 팀의 기본 한도"], ["LLM usage, all teams"]),
        (
            "/admin/audit",
            ["감사 로그", "수행자(팀 ID)", "CSV 다운로드"],
            ["Actor (team id)", "Download CSV"],
        ),
        (
            "/admin/system",
            ["대기열", "최근 실패", "데이터베이스 현황"],
            ["Recent failures", "In the database"],
        ),
    ],
)
async def test_admin_pages_read_in_korean_once_the_reader_chose_it(
    client, teams, path, korean, english
):
    await korean_admin(client, teams)
    page = await client.get(path)
    assert page.status_code == 200, page.text
    assert '<html lang="ko">' in page.text
    for phrase in korean:
        assert phrase in page.text, phrase
    for phrase in english:
        assert phrase not in page.text, phrase


async def test_a_batch_page_reads_in_korean_with_its_status_and_flash(client, teams):
    csrf = await korean_admin(client, teams)
    path = await draft_batch(client, csrf)
    page = (await client.get(path)).text
    assert "배치 “Round 1”을(를) 만들었습니다." in page  # the flash after creating it
    for phrase in (
        "배치 취소",
        "실행 CSV 내려받기",
        "배치를 시작하면 실행이 대기열에 들어갑니다.",
        "초안",
    ):
        assert phrase in page, phrase
    for phrase in ("Cancel batch", "Start the batch to queue its runs.", ">draft<"):
        assert phrase not in page, phrase


async def test_creating_a_team_says_so_in_korean_and_a_taken_name_is_refused_in_korean(
    client, teams
):
    csrf = await korean_admin(client, teams)
    created = await client.post(
        "/admin/teams",
        data={
            "name": "Blue Whales",
            "email": "blue@example.org",
            "role": "participant",
            "csrf_token": csrf,
        },
    )
    assert created.status_code == 201
    assert "Blue Whales 팀을 만들었습니다" in created.text
    assert "Team Blue Whales created" not in created.text

    refused = await client.post(
        "/admin/teams",
        data={"name": "blue whales", "email": "other@example.org", "csrf_token": csrf},
    )
    assert refused.status_code == 409
    assert "이름이 &#39;blue whales&#39;인 팀이 이미 있습니다." in refused.text
    assert "already exists" not in refused.text

    flashed = await client.post(
        "/admin/teams/1/quota", data={"daily_limit": "lots", "csrf_token": csrf}
    )
    assert flashed.status_code == 303
    page = (await client.get("/admin/teams")).text
    assert "&#39;lots&#39;은(는) 제출 횟수가 아닙니다. 0 이상의 숫자를 입력해 주세요." in page


async def test_a_reveal_refused_by_the_phase_is_korean_on_the_page(client, teams):
    csrf = await korean_admin(client, teams)
    refused = await client.post(
        "/admin/competition/reveal", data={"confirmed": "true", "csrf_token": csrf}
    )
    assert refused.status_code == 303
    page = (await client.get("/admin/competition")).text
    assert "먼저 최종 평가를 시작해 주세요. 결과 공개는 최종 평가 결과를 보여 줍니다." in page
    assert "Start the final evaluation first" not in page


async def test_the_apis_refusal_stays_english_with_a_korean_cookie_unless_asked_for_korean(
    client, teams
):
    admin = await teams.admin(name="Organizers")
    await client.post(
        "/api/v1/teams",
        headers=admin.auth,
        json={"name": "Blue Whales", "email": "blue@example.org"},
    )
    client.cookies.set("portal_lang", "ko")
    again = {"name": "blue whales", "email": "other@example.org"}

    english = await client.post("/api/v1/teams", headers=admin.auth, json=again)
    assert english.status_code == 409
    assert english.json()["error"]["message"] == "A team named 'blue whales' already exists."

    korean = await client.post(
        "/api/v1/teams", headers={**admin.auth, "Accept-Language": "ko"}, json=again
    )
    assert korean.status_code == 409
    assert korean.json()["error"]["message"] == "이름이 'blue whales'인 팀이 이미 있습니다."
    assert korean.json()["error"]["code"] == "name_taken"  # what scripts read stays the same


async def test_the_header_phase_and_its_clock_words_are_korean_on_a_korean_page(app, client, teams):
    admin = await teams.admin(name="Organizers")
    await configure(
        client,
        admin,
        starts_at=(T0 - timedelta(days=1)).isoformat(),
        freeze_at=(T0 + timedelta(hours=1)).isoformat(),
        ends_at=(T0 + timedelta(days=3, hours=5)).isoformat(),
    )
    set_clock(app, T0)
    client.cookies.set("portal_lang", "ko")
    page = (await client.get("/login")).text
    assert header_badge(page) == "진행 중 · 순위 동결까지 1시간 0분"
    assert 'title="순위 동결 2030. 3. 1. 13:00 UTC"' in page

    # The steps static/app.js counts down with, and the patterns it writes the time left
    # in (the body's data-words), are Korean, so the badge stays Korean as it ticks.
    steps = json.loads(re.search(r'data-steps="([^"]*)"', page).group(1).replace("&#34;", '"'))
    assert [step["text"] for step in steps] == [
        "진행 중 · 순위 동결까지",
        "순위 동결 · 종료까지",
        "종료됨",
    ]
    words = re.search(r'data-words="([^"]*)"', page).group(1).replace("&#34;", '"')
    assert json.loads(words)["days_hours"] == "%(days)s일 %(hours)s시간"
    assert json.loads(words)["seconds"] == "%(seconds)s초"

    set_clock(app, T0 + timedelta(hours=1, seconds=1))
    assert header_badge((await client.get("/login")).text) == "순위 동결 · 종료까지 3일 3시간"
