"""The dashboard works with and without JavaScript (plain forms and HTMX fragments)."""

import asyncio
import re

import pytest

from tests.fixtures.factories import browser_login

HX = {"HX-Request": "true"}


def upload_body(name: str, source: str) -> dict:
    return {"file": (name, source.encode(), "text/x-python")}


async def test_plain_form_upload_redirects_with_a_message(client, teams):
    alpha = await teams.create()
    csrf = await browser_login(client, alpha)
    response = await client.post(
        "/submissions",
        files=upload_body("a.py", "a = 1\n"),
        data={"csrf_token": csrf, "note": "v1"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    page = await client.get("/dashboard")
    assert "Uploaded a.py as #" in page.text
    assert "4 of 5</strong> uploads left today" in page.text
    assert '<span class="filename" title="a.py">a.py</span>' in page.text


async def test_plain_form_refusal_shows_the_reason(client, teams):
    alpha = await teams.create()
    csrf = await browser_login(client, alpha)
    await client.post(
        "/submissions", files=upload_body("bad.py", "def (:\n"), data={"csrf_token": csrf}
    )
    page = await client.get("/dashboard")
    assert "Python syntax error on line 1" in page.text
    assert "5 of 5</strong> uploads left today" in page.text


async def test_htmx_upload_returns_the_panel_with_the_new_row_and_full_progress(client, teams):
    alpha = await teams.create()
    csrf = await browser_login(client, alpha)
    response = await client.post(
        "/submissions",
        files=upload_body("b.py", "b = 2\n"),
        data={"note": "fast"},
        headers={**HX, "X-CSRF-Token": csrf},
    )
    assert response.status_code == 201
    html = response.text
    assert html.lstrip().startswith('<div id="submissions-panel">')
    assert '<progress class="upload-progress" value="100"' in html
    assert "b.py" in html and "fast" in html


async def test_htmx_upload_refusal_keeps_the_form_and_says_why(client, teams):
    alpha = await teams.create()
    csrf = await browser_login(client, alpha)
    response = await client.post(
        "/submissions", files=upload_body("c.txt", "c = 3\n"), headers={**HX, "X-CSRF-Token": csrf}
    )
    assert response.status_code == 422
    assert "must end in .py" in response.text
    assert 'id="upload-form"' in response.text


@pytest.mark.parametrize(
    ("form_headers", "expected"), [({}, [303, 303]), (HX, [201, 409])], ids=["plain", "htmx"]
)
async def test_a_double_click_on_upload_accepts_the_file_once(
    client, teams, form_headers, expected
):
    alpha = await teams.create()
    csrf = await browser_login(client, alpha)
    responses = await asyncio.gather(
        *(
            client.post(
                "/submissions",
                files=upload_body("twice.py", "t = 2\n"),
                data={"csrf_token": csrf},
                headers=form_headers,
            )
            for _ in range(2)
        )
    )
    assert sorted(r.status_code for r in responses) == expected
    if form_headers:
        [refused] = [r for r in responses if r.status_code == 409]
        assert "This file is identical to your submission #" in refused.text
    page = await client.get("/dashboard")
    assert "4 of 5</strong> uploads left today" in page.text
    assert page.text.count('<span class="filename" title="twice.py">twice.py</span>') == 1


async def test_upload_without_csrf_token_is_refused(client, teams):
    alpha = await teams.create()
    await browser_login(client, alpha)
    response = await client.post("/submissions", files=upload_body("d.py", "d = 4\n"))
    assert response.status_code == 403


async def test_htmx_pick_toggle_updates_the_button_and_the_counter(client, teams):
    alpha = await teams.create()
    csrf = await browser_login(client, alpha)
    ids = []
    for n in range(3):
        r = await client.post(
            "/api/v1/submissions",
            files=upload_body(f"s{n}.py", f"s = {n}\n"),
            headers={"X-CSRF-Token": csrf},
        )
        ids.append(r.json()["id"])
    headers = {**HX, "X-CSRF-Token": csrf}
    first = await client.post(
        f"/submissions/{ids[0]}/final", data={"final": "true"}, headers=headers
    )
    assert first.status_code == 200
    assert f'id="final-{ids[0]}"' in first.text and "★ Final" in first.text
    assert 'id="picks-counter"' in first.text and 'hx-swap-oob="true"' in first.text
    assert "Final picks: 1 of 2" in first.text
    await client.post(f"/submissions/{ids[1]}/final", data={"final": "true"}, headers=headers)
    third = await client.post(
        f"/submissions/{ids[2]}/final", data={"final": "true"}, headers=headers
    )
    assert third.status_code == 409
    assert "at most 2 final submissions" in third.text
    assert "☆ Pick" in third.text and "Final picks: 2 of 2" in third.text


async def test_plain_pick_toggle_works_without_javascript(client, teams):
    alpha = await teams.create()
    csrf = await browser_login(client, alpha)
    sid = (
        await client.post(
            "/api/v1/submissions",
            files=upload_body("p.py", "p = 1\n"),
            headers={"X-CSRF-Token": csrf},
        )
    ).json()["id"]
    response = await client.post(
        f"/submissions/{sid}/final", data={"final": "true", "back": "detail", "csrf_token": csrf}
    )
    assert response.status_code == 303 and response.headers["location"] == f"/submissions/{sid}"
    detail = await client.get(f"/submissions/{sid}")
    assert "★ Final" in detail.text and "Final picks: 1 of 2" in detail.text


async def test_detail_page_shows_the_source_escaped(client, teams):
    alpha = await teams.create()
    csrf = await browser_login(client, alpha)
    source = "print('<b>bold</b>')\n"
    sid = (
        await client.post(
            "/api/v1/submissions", files=upload_body("x.py", source), headers={"X-CSRF-Token": csrf}
        )
    ).json()["id"]
    page = await client.get(f"/submissions/{sid}")
    assert "print(&#39;&lt;b&gt;bold&lt;/b&gt;&#39;)" in page.text
    assert "<b>bold</b>" not in page.text
    assert f'href="/api/v1/submissions/{sid}/file"' in page.text
    assert "Not scored: the organizers have not set public seeds yet" in page.text


async def test_admin_sets_and_clears_a_quota_override_from_the_teams_page(client, teams):
    admin = await teams.admin()
    alpha = await teams.create(name="Quota Team")
    csrf = await browser_login(client, admin)
    response = await client.post(
        f"/admin/teams/{alpha.id}/quota", data={"daily_limit": "9", "csrf_token": csrf}
    )
    assert response.status_code == 303
    page = await client.get("/admin/teams")
    assert "Quota Team: daily upload limit set to 9." in page.text
    assert re.search(r'name="daily_limit"[^>]*value="9"', page.text)
    bad = await client.post(
        f"/admin/teams/{alpha.id}/quota", data={"daily_limit": "lots", "csrf_token": csrf}
    )
    assert bad.status_code == 303
    assert "lots&#39; is not a number of uploads" in (await client.get("/admin/teams")).text
    await client.post(
        f"/admin/teams/{alpha.id}/quota", data={"daily_limit": "", "csrf_token": csrf}
    )
    me = await client.get(f"/api/v1/teams/{alpha.id}", headers=admin.auth)
    assert me.json()["daily_submission_limit"] is None


async def test_htmx_error_before_the_handler_goes_to_the_error_banner(client, teams):
    alpha = await teams.create()
    await browser_login(client, alpha)
    response = await client.post(
        "/submissions",
        files=upload_body("e.py", "e = 1\n"),
        headers={**HX, "X-CSRF-Token": "forged"},
    )
    assert response.status_code == 403
    assert response.headers["hx-retarget"] == "#global-error"
    assert "<html" not in response.text
