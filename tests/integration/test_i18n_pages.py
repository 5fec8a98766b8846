"""The participant's and visitor's pages, their messages and their dates in Korean; the
API's refusals stay English unless the client itself asks for Korean."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from portal.main import create_app
from tests.fixtures.clients import make_client
from tests.fixtures.factories import TeamFactory, browser_login, csrf_from_login_page

HX = {"HX-Request": "true"}
SEOUL = "Asia/Seoul"


def python_file(name: str, source: str) -> dict:
    return {"file": (name, source.encode(), "text/x-python")}


@pytest.fixture
async def seoul_app(settings):
    """The portal of a competition run in Seoul time (PORTAL_TIMEZONE)."""
    application = create_app(settings.model_copy(update={"timezone": SEOUL}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def seoul_client(seoul_app):
    async with make_client(seoul_app) as http:
        yield http


async def read_in_korean(client) -> None:
    """The header's switch, as a reader clicks it."""
    csrf = await csrf_from_login_page(client)
    switched = await client.post(
        "/language", data={"language": "ko", "next": "/", "csrf_token": csrf}
    )
    assert switched.status_code == 303


async def test_a_teams_pages_read_in_korean_after_the_switch(client, teams):
    alpha = await teams.create()
    await read_in_korean(client)
    csrf = await browser_login(client, alpha)
    uploaded = await client.post(
        "/submissions", files=python_file("a.py", "a = 1\n"), data={"csrf_token": csrf}
    )
    assert uploaded.status_code == 303

    dashboard = (await client.get("/dashboard")).text
    assert "a.py 파일을 #" in dashboard  # the upload's flash message
    assert "오늘 남은 업로드" in dashboard and "내 제출" in dashboard
    assert "솔루션 업로드" in dashboard
    for english in ("uploads left today", "My submissions", "Upload a solution", "Uploaded a.py"):
        assert english not in dashboard

    submission_id = dashboard.split('href="/submissions/', 1)[1].split('"', 1)[0]
    detail = (await client.get(f"/submissions/{submission_id}")).text
    assert f"제출 #{submission_id}" in detail and "공개 평가" in detail
    assert "Public evaluation" not in detail and "Source" not in detail

    board = (await client.get("/leaderboard")).text
    assert "리더보드" in board and "순위" in board and "프로젝터 화면" in board
    assert "Projector view" not in board and "Last upload" not in board

    projector = (await client.get("/leaderboard/projector")).text
    assert '<html lang="ko">' in projector and "공개 리더보드" in projector
    assert "Public board" not in projector

    usage = (await client.get("/usage")).text
    assert "현재 한도 사용량" in usage and "분당 호출 수" in usage
    assert "Budgets right now" not in usage and "calls per minute" not in usage


async def test_a_korean_browser_reads_the_board_and_its_scripts_words_in_korean(client):
    """Accept-Language alone (no switch) is enough; the scripts' words come with the page."""
    board = await client.get("/leaderboard", headers={"Accept-Language": "ko"})
    assert "리더보드" in board.text and "Projector view" not in board.text
    # static/app.js writes "updated … ago" and the phase clock from these words.
    assert "전 갱신" in board.text and "updated %(age)s ago" not in board.text


async def test_an_upload_refused_over_the_daily_quota_says_so_in_korean(client, teams):
    alpha = await teams.create()
    await read_in_korean(client)
    csrf = await browser_login(client, alpha)
    headers = {**HX, "X-CSRF-Token": csrf}
    for number in range(5):
        accepted = await client.post(
            "/submissions", files=python_file(f"v{number}.py", f"v = {number}\n"), headers=headers
        )
        assert accepted.status_code == 201
    refused = await client.post(
        "/submissions", files=python_file("v5.py", "v = 5\n"), headers=headers
    )
    assert refused.status_code == 429
    assert "일일 제출 한도에 도달했습니다" in refused.text
    assert "Daily limit reached" not in refused.text


async def test_the_api_refuses_in_english_whatever_the_cookie_and_in_korean_when_asked(
    client, teams
):
    alpha = await teams.create()
    await read_in_korean(client)  # the browser's cookie must not change a script's message
    for number in range(5):
        await client.post(
            "/api/v1/submissions",
            files=python_file(f"v{number}.py", f"v = {number}\n"),
            headers=alpha.auth,
        )
    over = python_file("v5.py", "v = 5\n")
    english = await client.post("/api/v1/submissions", files=over, headers=alpha.auth)
    assert english.status_code == 429
    assert english.json()["error"]["message"].startswith("Daily limit reached: 5 of 5")
    korean = await client.post(
        "/api/v1/submissions",
        files=over,
        headers={**alpha.auth, "Accept-Language": "ko"},
    )
    assert korean.status_code == 429
    assert korean.json()["error"]["message"].startswith("일일 제출 한도에 도달했습니다")
    assert korean.json()["error"]["code"] == "quota_exceeded"


async def test_dates_on_a_korean_page_are_written_the_korean_way_in_the_competitions_time(
    seoul_app, seoul_client
):
    alpha = await TeamFactory(seoul_app.state.sessionmaker).create()
    uploaded = await seoul_client.post(
        "/api/v1/submissions", files=python_file("a.py", "a = 1\n"), headers=alpha.auth
    )
    submission = uploaded.json()
    created = datetime.fromisoformat(submission["created_at"]).astimezone(ZoneInfo(SEOUL))
    await read_in_korean(seoul_client)
    await browser_login(seoul_client, alpha)

    detail = (await seoul_client.get(f"/submissions/{submission['id']}")).text
    assert f"{created.year}. {created.month}. {created.day}. {created:%H:%M} KST" in detail
    dashboard = (await seoul_client.get("/dashboard")).text
    assert f"{created.month}월 {created.day}일 {created:%H:%M}" in dashboard
