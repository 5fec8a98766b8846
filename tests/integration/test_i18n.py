"""Pages in Korean and English: the header's switch, the browser's language, the API's
English, and catalogs that keep up with the code."""

from portal.cli.i18n import catalog_problems
from tests.fixtures.factories import csrf_from_login_page


def test_every_message_has_a_korean_translation_and_the_catalogs_are_current():
    """`uv run portal i18n extract` then translating the new entries fixes this."""
    assert catalog_problems() == []


async def test_the_header_switch_remembers_korean_and_goes_back_to_the_page(client):
    csrf = await csrf_from_login_page(client)
    switched = await client.post(
        "/language", data={"language": "ko", "next": "/leaderboard?q=x", "csrf_token": csrf}
    )
    assert switched.status_code == 303
    assert switched.headers["location"] == "/leaderboard?q=x"
    page = await client.get("/login")
    assert '<html lang="ko">' in page.text
    assert "로그인" in page.text
    csrf = await csrf_from_login_page(client)
    await client.post("/language", data={"language": "en", "next": "/login", "csrf_token": csrf})
    page = await client.get("/login")
    assert '<html lang="en">' in page.text and "로그인" not in page.text


async def test_a_switch_to_an_unknown_language_or_elsewhere_is_refused(client):
    csrf = await csrf_from_login_page(client)
    refused = await client.post("/language", data={"language": "fr", "csrf_token": csrf})
    assert refused.status_code == 422
    assert "en, ko" in refused.text
    offsite = await client.post(
        "/language", data={"language": "ko", "next": "//evil.example/", "csrf_token": csrf}
    )
    assert offsite.headers["location"] == "/"
    forged = await client.post("/language", data={"language": "ko"})
    assert forged.status_code == 403


async def test_a_korean_browser_reads_korean_pages_until_the_reader_switches(client):
    korean = {"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"}
    page = await client.get("/login", headers=korean)
    assert '<html lang="ko">' in page.text
    assert "Accept-Language" in page.headers["vary"]
    csrf = await csrf_from_login_page(client)
    await client.post("/language", data={"language": "en", "next": "/", "csrf_token": csrf})
    page = await client.get("/login", headers=korean)
    assert '<html lang="en">' in page.text


async def test_a_refusal_on_a_page_reads_in_the_pages_language(client):
    csrf = await csrf_from_login_page(client)
    await client.post("/language", data={"language": "ko", "next": "/", "csrf_token": csrf})
    refused = await client.post("/language", data={"language": "xx", "csrf_token": csrf})
    assert refused.status_code == 422
    assert "다음 언어 중 하나를 선택해 주세요: en, ko." in refused.text


async def test_switching_on_a_page_a_post_answered_goes_home_not_to_a_405(client):
    csrf = await csrf_from_login_page(client)
    refused = await client.post("/login", data={"email": "", "api_token": "", "csrf_token": csrf})
    assert refused.status_code == 400
    switch = refused.text.split('action="/language"', 1)[1].split("</form>", 1)[0]
    assert 'name="next" value="/"' in switch


async def test_switching_on_a_page_with_a_long_korean_search_keeps_the_page(client):
    csrf = await csrf_from_login_page(client)
    long_search = "/leaderboard?q=" + "%EA%B0%80" * 120  # 120 syllables, 1,095 characters
    switched = await client.post(
        "/language", data={"language": "ko", "next": long_search, "csrf_token": csrf}
    )
    assert switched.status_code == 303
    assert switched.headers["location"] == "/leaderboard"


async def test_an_unknown_address_says_so_in_the_readers_language(client):
    client.cookies.set("portal_lang", "ko")
    page = await client.get("/no-such-page", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert "이 주소에는 페이지나 자료가 없습니다." in page.text
    api = await client.get("/api/v1/no-such-thing")
    assert api.json()["error"]["message"] == "There is no page or resource at this address."
    asked = await client.get("/api/v1/no-such-thing", headers={"Accept-Language": "ko"})
    assert asked.json()["error"]["message"] == "이 주소에는 페이지나 자료가 없습니다."


async def test_the_last_resort_error_page_reads_in_the_readers_language(app, client):
    async def explode():
        raise RuntimeError("internals")

    app.add_api_route("/explode-in-korean", explode)
    client.cookies.set("portal_lang", "ko")
    page = await client.get("/explode-in-korean", headers={"Accept": "text/html"})
    assert page.status_code == 500
    assert "<html lang='ko'>" in page.text and "internals" not in page.text
    assert "Something went wrong" not in page.text


async def test_an_htmx_switch_back_to_a_korean_address_is_sent_encoded(client):
    csrf = await csrf_from_login_page(client)
    switched = await client.post(
        "/language",
        data={"language": "ko", "next": "/leaderboard?q=한국", "csrf_token": csrf},
        headers={"HX-Request": "true"},
    )
    assert switched.status_code == 204
    assert switched.headers["hx-redirect"] == "/leaderboard?q=%ED%95%9C%EA%B5%AD"
