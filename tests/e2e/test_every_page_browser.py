"""Every page, as a visitor, a participant and an admin, with realistic long data, at the
widths people use: nothing scrolls sideways, no control hides under another, axe-core
finds nothing serious, forms work by keyboard alone, and screenshots in English and
Korean go to test-artifacts/ for a person to look at.

One portal, one browser and one page per role for the whole module: the data is seeded
once (tests/fixtures/long_data.py) and each page is loaded once, then resized."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.fixtures.browser import COVERED_CONTROLS_SCRIPT
from tests.fixtures.environment import ARTIFACTS
from tests.fixtures.live import portal_process, route_table_app
from tests.fixtures.long_data import LongData, seed_long_data
from tests.fixtures.routes import get_paths
from tests.fixtures.services import reset

WIDTHS = (390, 1280, 1440, 1920)
HEIGHT = 900
LANGUAGES = ("en", "ko")


@dataclass(frozen=True)
class PageCase:
    role: str  # visitor, participant or admin
    name: str
    route: str  # the router's path, with its parameters
    ids: Callable[[LongData], dict[str, int]] = lambda data: {}
    translated: bool = True  # False: the page is in English whatever the language

    @property
    def id(self) -> str:
        return f"{self.role}-{self.name}"

    def url(self, data: LongData) -> str:
        return self.route.format(**self.ids(data))


PAGES = [
    PageCase("visitor", "login", "/login"),
    PageCase("visitor", "leaderboard", "/leaderboard"),
    PageCase(
        "visitor",
        "leaderboard-team",
        "/leaderboard/teams/{team_id}",
        lambda d: {"team_id": d.board_team_id},
    ),
    PageCase("visitor", "projector", "/leaderboard/projector"),
    PageCase("visitor", "docs", "/docs", translated=False),  # the vendored Swagger UI
    PageCase("visitor", "error", "/no-such-page"),
    PageCase("participant", "dashboard", "/dashboard"),
    PageCase(
        "participant",
        "submission",
        "/submissions/{submission_id}",
        lambda d: {"submission_id": d.submission_ids[-4]},
    ),
    PageCase("participant", "leaderboard", "/leaderboard"),
    PageCase(
        "participant",
        "leaderboard-team",
        "/leaderboard/teams/{team_id}",
        lambda d: {"team_id": d.participant.id},
    ),
    PageCase("participant", "usage", "/usage"),
    PageCase("participant", "error", "/admin/teams"),
    PageCase("admin", "teams", "/admin/teams"),
    PageCase("admin", "competition", "/admin/competition"),
    PageCase("admin", "batches", "/admin/batches"),
    PageCase("admin", "batch", "/admin/batches/{batch_id}", lambda d: {"batch_id": d.batch_id}),
    PageCase("admin", "run-log", "/admin/runs/{run_id}/log", lambda d: {"run_id": d.failed_run_id}),
    PageCase("admin", "usage", "/admin/usage"),
    PageCase(
        "admin",
        "llm-limit",
        "/admin/teams/{team_id}/llm-limit",
        lambda d: {"team_id": d.participant.id},
    ),
    PageCase("admin", "audit", "/admin/audit"),
    PageCase("admin", "system", "/admin/system"),
    PageCase("admin", "leaderboard", "/leaderboard"),
    PageCase("admin", "reveal", "/leaderboard/projector/reveal"),
]

# GET routes that are not pages: the API, the gateway, probes, fragments, downloads, and
# "/" (it redirects to a page).
NOT_PAGES = re.compile(
    r"^(/api/|/llm/|/v1/|/static)|^/(healthz|readyz|metrics|openapi\.json)?$"
    r"|/row$|\.(txt|csv)$"
)


def check_params(check: str, widths: tuple[int, ...] | tuple[None, ...]) -> list:
    """(page, width) pairs, page by page so each page is loaded once then resized."""
    params = []
    for case in PAGES:
        for width in widths:
            suffix = f"-{width}" if width else ""
            params.append(pytest.param(case, width, id=case.id + suffix))
    return params


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    """The module shares one seeded database (see `portal`): no emptying between tests."""
    yield


@pytest.fixture(scope="module")
def portal(services, echo_upstream, tmp_path_factory) -> Iterator[tuple[str, LongData]]:
    work_dir = tmp_path_factory.mktemp("every-page")
    reset(services)
    data = seed_long_data(services, work_dir / "objects")
    upstream = {"PORTAL_LLM_UPSTREAM_URL": echo_upstream.url}
    try:
        with portal_process(services, work_dir, upstream) as base_url:
            yield base_url, data
    finally:
        reset(services)


@pytest.fixture(scope="module")
def chromium(chromium_path) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


def log_in(page: Page, base_url: str, email: str, token: str) -> None:
    page.goto(f"{base_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/(dashboard|admin/.*)$"))


def open_pages(portal, chromium, language: str) -> Iterator[dict[str, Page]]:
    """One page per role, kept for the module (logged in once), reading `language`."""
    base_url, data = portal
    opened = {}
    for role in ("visitor", "participant", "admin"):
        context = chromium.new_context(
            viewport={"width": 1280, "height": HEIGHT}, base_url=base_url
        )
        opened[role] = context.new_page()
    log_in(opened["participant"], base_url, data.participant.email, data.participant.token)
    log_in(opened["admin"], base_url, data.admin.email, data.admin.token)
    for page in opened.values():
        page.context.add_cookies([{"name": "portal_lang", "value": language, "url": base_url}])
    yield opened
    for page in opened.values():
        page.context.close()


@pytest.fixture(scope="module")
def pages(portal, chromium) -> Iterator[dict[str, Page]]:
    yield from open_pages(portal, chromium, "en")


@pytest.fixture(scope="module")
def korean_pages(portal, chromium) -> Iterator[dict[str, Page]]:
    """Korean words are longer or shorter than English ones and wrap anywhere: every
    check runs in both languages."""
    yield from open_pages(portal, chromium, "ko")


def show(pages: dict[str, Page], portal, case: PageCase, width: int | None = None) -> Page:
    """The role's page showing `case` at `width` (loaded only if it shows something else)."""
    base_url, data = portal
    page = pages[case.role]
    url = base_url + case.url(data)
    if page.url != url:
        page.goto(url)
        page.wait_for_load_state("networkidle")
    if width and page.viewport_size["width"] != width:
        page.set_viewport_size({"width": width, "height": HEIGHT})
    return page


def test_every_page_route_is_in_the_list():
    routes = {path for path in get_paths(route_table_app()) if not NOT_PAGES.search(path)}
    visited = {case.route for case in PAGES}
    assert routes - visited == set(), "page routes this suite does not visit"


@pytest.mark.parametrize("case,width", check_params("sideways", WIDTHS))
@pytest.mark.parametrize("language", LANGUAGES)
def test_page_does_not_scroll_sideways(
    pages, korean_pages, portal, case: PageCase, width: int, language: str
):
    page = show(korean_pages if language == "ko" else pages, portal, case, width)
    scroll_width, window_width = page.evaluate(
        "[document.scrollingElement.scrollWidth, window.innerWidth]"
    )
    widest = page.evaluate(
        """() => {
          let widest = null, right = window.innerWidth;
          for (const el of document.body.querySelectorAll('*')) {
            const box = el.getBoundingClientRect();
            if (box.right > right + 0.5) { right = box.right; widest = el; }
          }
          return widest ? widest.tagName.toLowerCase() + [...widest.classList].map(c => '.' + c).join('') : '';
        }"""
    )
    assert scroll_width <= window_width, (
        f"{case.id} ({page.url}, {language}) scrolls sideways at {width} px: {scroll_width} px wide, "
        f"widest element {widest}"
    )


@pytest.mark.parametrize("case,width", check_params("reachable", WIDTHS))
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_control_is_reachable(
    pages, korean_pages, portal, case: PageCase, width: int, language: str
):
    page = show(korean_pages if language == "ko" else pages, portal, case, width)
    covered = page.evaluate(COVERED_CONTROLS_SCRIPT)
    assert covered == [], f"{case.id} ({page.url}, {language}) at {width} px: hidden: {covered}"


@pytest.mark.parametrize("case,width", check_params("axe", (None,)))
@pytest.mark.parametrize("language", LANGUAGES)
def test_no_serious_accessibility_violations(
    pages, korean_pages, portal, case: PageCase, width: None, language: str
):
    page = show(korean_pages if language == "ko" else pages, portal, case, 1280)
    results = Axe().run(page)
    serious = [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(str(node["target"]) for node in violation["nodes"][:5])
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"{case.id} ({page.url}, {language}): {serious}"


@pytest.mark.parametrize("case,width", check_params("screenshot", (None,)))
def test_screenshots_in_both_languages(pages, portal, case: PageCase, width: None):
    """Written to test-artifacts/pages/ for a person to look at; each shows its language."""
    base_url, _ = portal
    page = pages[case.role]
    ARTIFACTS.joinpath("pages").mkdir(parents=True, exist_ok=True)
    widths = (1280, 390) if case.role == "participant" else (1280,)
    try:
        for language in LANGUAGES:
            page.context.add_cookies([{"name": "portal_lang", "value": language, "url": base_url}])
            page.goto("about:blank")
            for shot_width in widths:
                show(pages, portal, case, shot_width)
                shown = language if case.translated else "en"
                expect(page.locator("html")).to_have_attribute("lang", shown)
                page.screenshot(
                    path=ARTIFACTS / "pages" / f"{case.id}-{language}-{shot_width}.png",
                    full_page=True,
                )
    finally:
        page.context.add_cookies([{"name": "portal_lang", "value": "en", "url": base_url}])
        page.goto("about:blank")


# Forms by keyboard alone: Tab to each field (every stop shows where the focus is), type,
# press Enter or Space.

FOCUS_SHOWN = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return '';  // past the last control: the next Tab wraps
  const style = getComputedStyle(el);
  const outlined = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0;
  return outlined || style.boxShadow !== 'none' ? '' : el.outerHTML.slice(0, 120);
}"""


def tab_to(page: Page, selector: str, presses: int = 60) -> None:
    """Press Tab until the element matching `selector` has the focus (wrapping round the
    page's end, as a browser does); every element the focus passes shows a visible focus
    style."""
    target = page.locator(selector)
    passed = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        unmarked = page.evaluate(FOCUS_SHOWN)
        assert unmarked == "", (
            f"{page.url}: the focused element shows no focus: {unmarked}, after {passed[-5:]}"
        )
        passed.append(page.evaluate("document.activeElement.outerHTML.slice(0, 80)"))
        if target.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{page.url}: {selector} not reached in {presses} presses of Tab")


def test_logging_in_by_keyboard(chromium, portal):
    base_url, data = portal
    context = chromium.new_context(viewport={"width": 1280, "height": HEIGHT}, base_url=base_url)
    page = context.new_page()
    page.goto("/login")
    tab_to(page, "#email")
    page.keyboard.type(data.participant.email)
    tab_to(page, "#api_token")
    page.keyboard.type(data.participant.token)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/dashboard$"))
    context.close()


def test_uploading_and_picking_a_final_submission_by_keyboard(chromium, portal):
    base_url, data = portal
    context = chromium.new_context(viewport={"width": 1280, "height": HEIGHT}, base_url=base_url)
    page = context.new_page()
    log_in(page, base_url, data.participant.email, data.participant.token)
    tab_to(page, "#file", presses=200)
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(
        {
            "name": "tsp_keyboard_only_then_2opt_v4.py",
            "mimeType": "text/x-python",
            "buffer": b"print('keyboard')\n",
        }
    )
    tab_to(page, "#note")
    page.keyboard.type("uploaded without a mouse")
    page.keyboard.press("Enter")
    row = page.locator("tr", has_text="tsp_keyboard_only_then_2opt_v4.py")
    expect(row).to_be_visible()

    pick = row.get_by_role("button", name=re.compile("Pick"))
    tab_to(page, f"#{row.get_attribute('id')} button.pick")
    page.keyboard.press("Enter")
    expect(row.get_by_role("button", name=re.compile("Final"))).to_have_attribute(
        "aria-pressed", "true"
    )
    assert pick.count() == 0
    context.close()


def test_admin_creates_a_team_by_keyboard(pages, portal):
    base_url, _ = portal
    page = pages["admin"]
    page.goto(f"{base_url}/admin/teams")
    tab_to(page, "#new-name", presses=400)
    page.keyboard.type("Keyboard Only Team of the Accessibility Working Group")
    tab_to(page, "#new-email")
    page.keyboard.type("keyboard.only.team@accessibility-example.org")
    page.keyboard.press("Enter")
    expect(
        page.get_by_role(
            "cell", name="Keyboard Only Team of the Accessibility Working Group", exact=True
        )
    ).to_be_visible()
    results = Axe().run(page)
    serious = [
        v["id"] for v in results.response["violations"] if v["impact"] in ("serious", "critical")
    ]
    assert serious == [], f"the new team's token page: {serious}"


@pytest.mark.parametrize("width", (390, 1280, 1920))
def test_a_failed_runs_reason_reads_in_lines_not_a_column_of_words(pages, portal, width):
    """The batch page's Reason column was about 60 px wide: one word per line."""
    batch = next(case for case in PAGES if case.id == "admin-batch")
    page = show(pages, portal, batch, width)
    widths = page.evaluate(
        "[...document.querySelectorAll('td.reason')].map(td => td.getBoundingClientRect().width)"
    )
    assert widths, "the seeded batch shows its runs' reasons"
    assert min(widths) >= 200, f"Reason cells at {width} px: {sorted(widths)[:5]} px wide"
