"""A team uploads with the progress bar, picks finals and is refused a third pick; an
upload's row goes from queued to its public score by itself."""

import re

from playwright.async_api import expect

from tests.fixtures.browser import collect_script_errors, upload_file
from tests.fixtures.competition import configure
from tests.fixtures.evaluation import example
from tests.fixtures.factories import TeamFactory

LONG_NAME = "tsp_nearest_neighbour_then_2opt_v3.py"


async def _log_in(page, base_url, email, token):
    await page.goto(f"{base_url}/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(r"/dashboard$"))


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
    await upload_file(page, "big_solution.py", big_source, note="first version")
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
        await upload_file(page, f"solution_{number}.py", f"print({number})\n".encode())
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
    await upload_file(page, "huge.py", b"#" * (1024 * 1024 + 10))
    await expect(page.locator("[data-upload-error]")).to_contain_text(
        "the limit is 1,048,576 bytes"
    )
    await expect(page.locator("#quota")).to_contain_text("5 of 5")
    await page.close()


async def test_an_upload_goes_from_queued_to_its_public_score_without_a_reload(
    app, client, live_server, browser, eval_worker, artifacts
):
    factory = TeamFactory(app.state.sessionmaker)
    admin = await factory.admin()
    await configure(client, admin, public_seeds=[1, 2])
    team = await factory.create(name="Team Tour", email="tour@example.org")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors = collect_script_errors(page)
    await _log_in(page, live_server, team.email, team.token)
    # A mark on this document: it survives only if the page is never reloaded.
    await page.evaluate("window.sameDocument = true")

    # Slow enough that its two runs are seen running (and hold both worker threads, so
    # the next upload waits its turn).
    slow_good = b"import time\ntime.sleep(4)\n" + example("tsp_nearest_neighbour.py")
    await upload_file(page, LONG_NAME, slow_good, note="nearest neighbour, 2-opt next")
    await expect(
        page.get_by_role("status").filter(has_text=f"Uploaded {LONG_NAME}")
    ).to_contain_text(
        "Queued for scoring on 2 public seeds; the score appears here within a minute."
    )
    good_row = page.locator("tbody tr", has_text=LONG_NAME)
    await expect(good_row.locator(".status")).to_have_text(re.compile("queued|running"))
    # caret="initial": hiding the caret leaves style="" on the inputs, which the next
    # swap would copy into the new form (and the CSP refuses, a test-only error).
    await page.screenshot(
        path=str(artifacts / "dashboard-queued.png"), full_page=True, caret="initial"
    )
    await upload_file(page, "crash.py", b"print('about to fail')\nraise SystemExit(3)\n")
    crash_row = page.locator("tbody tr", has_text="crash.py")
    await expect(crash_row.locator(".status")).to_have_text(re.compile("queued|running"))
    await expect(good_row.locator(".status")).to_have_text("running", timeout=60_000)
    await page.screenshot(path=str(artifacts / "dashboard-running.png"), full_page=True)

    await expect(good_row.locator(".status")).to_have_text("scored", timeout=90_000)
    await expect(good_row.locator("a.score")).to_have_text(re.compile(r"^\d+\.\d{4}$"))
    await expect(crash_row.locator(".status")).to_have_text("failed", timeout=90_000)
    await expect(crash_row).to_contain_text("Exited with code 3.")
    await page.screenshot(path=str(artifacts / "dashboard-scored-and-failed.png"), full_page=True)
    assert await page.evaluate("window.sameDocument === true")
    # Settled rows stop polling.
    await expect(page.locator("tbody tr[hx-trigger]")).to_have_count(0)

    # The per-seed results are one click away: the score links to them.
    await good_row.locator("a.score").click()
    await page.wait_for_url(re.compile(r"/submissions/\d+#results$"))
    results = page.locator("#results")
    await expect(results.locator("tbody tr")).to_have_count(2)
    await expect(results.locator("tbody .status-scored")).to_have_count(2)
    await page.screenshot(path=str(artifacts / "submission-public-results.png"), full_page=True)
    await page.go_back()
    await crash_row.get_by_role("link", name="Log").click()
    await page.wait_for_url(re.compile(r"/submissions/\d+#results$"))
    await page.locator("#results details.log summary").first.click()
    await expect(page.locator("#results details.log pre").first).to_contain_text("about to fail")
    await page.screenshot(path=str(artifacts / "submission-public-failed.png"), full_page=True)
    assert errors == [], errors
    await context.close()
