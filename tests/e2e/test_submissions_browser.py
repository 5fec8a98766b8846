"""A team uploads with the progress bar, picks finals and is refused a third pick."""

import re

from playwright.async_api import expect

from tests.fixtures.browser import collect_script_errors
from tests.fixtures.factories import TeamFactory


async def _log_in(page, base_url, email, token):
    await page.goto(f"{base_url}/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(r"/dashboard$"))


async def _upload(page, name: str, content: bytes, note: str = "") -> None:
    await page.get_by_label("Python file").set_input_files(
        {"name": name, "mimeType": "text/x-python", "buffer": content}
    )
    if note:
        await page.get_by_label("Note (optional)").fill(note)
    await page.get_by_role("button", name="Upload").click()


async def test_upload_progress_picks_and_the_pick_limit(app, live_server, browser, artifacts):
    team = await TeamFactory(app.state.sessionmaker).create(
        name="Team Alpha", email="alpha@example.org"
    )
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors = collect_script_errors(page)
    await _log_in(page, live_server, team.email, team.token)
    await expect(page.locator("#quota")).to_contain_text("5 of 5")

    # Slow the upload link down so the bar is seen moving, not just finished.
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": 256 * 1024,
        },
    )
    big_source = b"# padding\n" * 60_000 + b"def solve():\n    return 1\n"  # ~600 KB
    await _upload(page, "big_solution.py", big_source, note="first version")
    progress = page.locator("#upload-progress")
    await expect(progress).to_be_visible()
    await page.wait_for_function(
        "() => { const v = document.querySelector('#upload-progress')?.value; "
        "return v > 0 && v < 100; }",
        timeout=15_000,
    )
    await cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": -1,
        },
    )
    done = page.locator(".flash .upload-progress")
    await expect(done).to_have_attribute("value", "100", timeout=30_000)
    await expect(
        page.get_by_role("status").filter(has_text="Uploaded big_solution.py")
    ).to_be_visible()
    await expect(page.get_by_role("cell", name="big_solution.py")).to_be_visible()
    await expect(page.locator("#quota")).to_contain_text("4 of 5")

    for number in (2, 3):
        await _upload(page, f"solution_{number}.py", f"print({number})\n".encode())
        await expect(page.get_by_role("cell", name=f"solution_{number}.py")).to_be_visible()

    pick_buttons = page.get_by_role("button", name="☆ Pick")
    await pick_buttons.first.click()
    await expect(page.locator("#picks-counter")).to_have_text("Final picks: 1 of 2")
    await page.get_by_role("button", name="☆ Pick").first.click()
    await expect(page.locator("#picks-counter")).to_have_text("Final picks: 2 of 2")
    await page.get_by_role("button", name="☆ Pick").first.click()
    await expect(
        page.get_by_role("alert").filter(has_text="at most 2 final submissions")
    ).to_be_visible()
    await expect(page.locator("#picks-counter")).to_have_text("Final picks: 2 of 2")
    await expect(page.get_by_role("button", name="★ Final")).to_have_count(2)
    await page.screenshot(path=str(artifacts / "dashboard-submissions.png"), full_page=True)

    # The detail page shows the source as text.
    await page.get_by_role("link", name=re.compile(r"^#\d+$")).first.click()
    await expect(page.locator("pre.source")).to_contain_text("print(3)")
    await page.screenshot(path=str(artifacts / "submission-detail.png"), full_page=True)
    assert errors == [], errors
    await context.close()


async def test_a_file_over_the_limit_is_refused_before_upload(app, live_server, browser):
    team = await TeamFactory(app.state.sessionmaker).create()
    page = await browser.new_page()
    await _log_in(page, live_server, team.email, team.token)
    await _upload(page, "huge.py", b"#" * (1024 * 1024 + 10))
    await expect(page.locator("[data-upload-error]")).to_contain_text("the limit is 1048576 bytes")
    await expect(page.locator("#quota")).to_contain_text("5 of 5")
    await page.close()
