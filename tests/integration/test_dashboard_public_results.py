"""The dashboard shows each upload's public evaluation and follows the competition's
window: rows poll until settled, uploads say what happens next, the upload card and
the pick toggles close when the competition does."""

import re
from datetime import timedelta

from tests.fixtures.competition import at, configure
from tests.fixtures.factories import browser_login
from tests.fixtures.public_results import Entry, Run, seed_public_batch, set_public_status

HX = {"HX-Request": "true"}
POLLING = 'hx-trigger="every 2s"'
CRASH_REASON = "Exited with code 3. Last log lines:\nTraceback (most recent call last):\nboom"


def upload_body(name: str, source: str) -> dict:
    return {"file": (name, source.encode(), "text/x-python")}


def row_of(page: str, submission_id: int) -> str:
    match = re.search(rf'<tr id="submission-{submission_id}".*?</tr>', page, re.S)
    assert match, f"no row for #{submission_id}"
    return match.group(0)


async def test_pending_rows_poll_and_settled_rows_show_their_score_or_reason(
    client, teams, services
):
    team = await teams.create(name="Rows")
    queued, running, scored, failed = seed_public_batch(
        services,
        "Rows",
        [
            Entry("queued.py", [Run("queued"), Run("queued")]),
            Entry("running.py", [Run("scored", 2.5), Run("running")]),
            Entry("scored.py", [Run("scored", 3.0), Run("scored", 4.0)]),
            Entry("crash.py", [Run("failed", reason=CRASH_REASON), Run("scored", 2.0)]),
        ],
    )
    await browser_login(client, team)
    page = (await client.get("/dashboard")).text

    for pending, status in ((queued, "queued"), (running, "running")):
        row = row_of(page, pending)
        assert f'hx-get="/submissions/{pending}/row"' in row and POLLING in row
        assert f">{status}</span>" in row
    settled = row_of(page, scored)
    assert POLLING not in settled and "3.5000" in settled
    crashed = row_of(page, failed)
    assert POLLING not in crashed and ">failed</span>" in crashed
    # The reason in one line (the full log is on the submission's page), and how many
    # of the seeds failed.
    assert "Exited with code 3. (1 of 2 seeds)" in crashed and "boom" not in crashed
    assert f'href="/submissions/{failed}#results"' in crashed

    # The polled fragment is the row itself; once settled it stops polling.
    fragment = await client.get(f"/submissions/{queued}/row", headers=HX)
    assert fragment.text.lstrip().startswith(f'<tr id="submission-{queued}"')
    assert POLLING in fragment.text
    set_public_status(services, queued, Entry("queued.py", [Run("scored", 1.25)]))
    fragment = await client.get(f"/submissions/{queued}/row", headers=HX)
    assert POLLING not in fragment.text and "1.2500" in fragment.text
    assert ">scored</span>" in fragment.text


async def test_a_row_fragment_of_another_teams_submission_is_not_found(client, teams, services):
    owner = await teams.create(name="Owner")
    other = await teams.create(name="Other")
    (submission,) = seed_public_batch(services, "Owner", [Entry("mine.py", [Run("queued")])])
    await browser_login(client, other)
    response = await client.get(f"/submissions/{submission}/row", headers=HX)
    assert response.status_code == 404
    await browser_login(client, owner)
    assert (await client.get(f"/submissions/{submission}/row", headers=HX)).status_code == 200


async def test_without_public_seeds_uploads_say_they_are_not_scored_yet(client, teams):
    team = await teams.create()
    csrf = await browser_login(client, team)
    response = await client.post(
        "/submissions", files=upload_body("a.py", "a = 1\n"), headers={**HX, "X-CSRF-Token": csrf}
    )
    assert response.status_code == 201
    assert "Not scored yet: no public seeds are set." in response.text
    page = (await client.get("/dashboard")).text
    submission = (await client.get("/api/v1/submissions", headers=team.auth)).json()["items"][0]
    assert "Not scored: the organizers have not set public seeds yet" in page
    row = row_of(page, submission["id"])
    assert ">not scored</span>" in row and POLLING not in row


async def test_with_public_seeds_an_upload_is_queued_on_them_and_its_row_polls(client, teams):
    admin = await teams.admin()
    await configure(client, admin, public_seeds=[5, 6, 7])
    team = await teams.create()
    csrf = await browser_login(client, team)
    response = await client.post(
        "/submissions", files=upload_body("b.py", "b = 2\n"), headers={**HX, "X-CSRF-Token": csrf}
    )
    assert response.status_code == 201
    assert (
        "Queued for scoring on 3 public seeds; the score appears here within a minute."
        in response.text
    )
    assert "Each upload is scored on 3 public seeds" in response.text
    submission = (await client.get("/api/v1/submissions", headers=team.auth)).json()["items"][0]
    assert submission["public_status"] == "queued"
    row = row_of(response.text, submission["id"])
    assert ">queued</span>" in row and POLLING in row

    # Without JavaScript the same message comes back as a flash after the redirect.
    await client.post(
        "/submissions", files=upload_body("c.py", "c = 3\n"), data={"csrf_token": csrf}
    )
    page = await client.get("/dashboard")
    assert "Queued for scoring on 3 public seeds" in page.text


async def test_before_the_start_the_upload_card_says_when_the_competition_opens(client, teams):
    admin = await teams.admin()
    await configure(client, admin, starts_at=at(timedelta(days=1)), ends_at=at(timedelta(days=8)))
    team = await teams.create()
    await browser_login(client, team)
    page = (await client.get("/dashboard")).text
    assert "The competition opens at" in page
    assert 'id="upload-form"' not in page
    refused = await client.post(
        "/api/v1/submissions", files=upload_body("early.py", "e = 1\n"), headers=team.auth
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "competition_not_started"


async def test_after_the_end_uploads_and_picks_are_closed_on_the_dashboard(client, teams):
    admin = await teams.admin()
    team = await teams.create()
    csrf = await browser_login(client, team)
    picked = (
        await client.post(
            "/api/v1/submissions", files=upload_body("p.py", "p = 1\n"), headers=team.auth
        )
    ).json()["id"]
    other = (
        await client.post(
            "/api/v1/submissions", files=upload_body("q.py", "q = 1\n"), headers=team.auth
        )
    ).json()["id"]
    await client.put(f"/api/v1/submissions/{picked}/final", headers=team.auth)
    await configure(client, admin, ends_at=at(-timedelta(minutes=5)))

    page = (await client.get("/dashboard")).text
    assert "The competition has ended" in page and 'id="upload-form"' not in page
    assert "Final picks are closed" in page
    for submission_id in (picked, other):
        row = row_of(page, submission_id)
        assert re.search(r"<button[^>]*disabled", row), row
        assert "<form" not in row
    assert "★ Final" in row_of(page, picked)

    # The form answer (JS on or off) still refuses, and says why.
    headers = {**HX, "X-CSRF-Token": csrf}
    response = await client.post(
        f"/submissions/{other}/final", data={"final": "true"}, headers=headers
    )
    assert response.status_code == 409
    assert "Final picks are closed" in response.text
    assert re.search(r"<button[^>]*disabled", response.text)
    detail = await client.get(f"/submissions/{picked}")
    assert "Final picks are closed" in detail.text
    assert re.search(r"<button[^>]*disabled", detail.text)
    refused = await client.post(
        "/api/v1/submissions", files=upload_body("late.py", "l = 1\n"), headers=team.auth
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "competition_ended"
