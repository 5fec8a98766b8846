"""Paginated lists: the pages together hold each matching item once, and `total` counts
exactly the items the pages hold, whatever the listing joins or filters."""

import sqlalchemy as sa

from portal.core.pagination import PageParams, paginate
from portal.teams.models import Team


async def test_pages_of_a_filtered_list_hold_each_match_once_and_total_counts_them(client, teams):
    admin = await teams.admin()
    blue = {(await teams.create(name=f"Blue {n}")).id for n in range(7)}
    for n in range(3):
        await teams.create(name=f"Red {n}")

    seen: list[int] = []
    for page in (1, 2, 3):
        response = await client.get(
            "/api/v1/teams", params={"q": "blue", "page": page, "size": 3}, headers=admin.auth
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["page"], body["size"], body["total"]) == (page, 3, 7)
        seen += [item["id"] for item in body["items"]]
    assert sorted(seen) == sorted(blue)

    past_the_end = await client.get(
        "/api/v1/teams", params={"q": "blue", "page": 4, "size": 3}, headers=admin.auth
    )
    assert past_the_end.json() == {"items": [], "page": 4, "size": 3, "total": 7}


async def test_total_of_a_joined_listing_counts_its_rows_even_with_repeated_column_names(
    app, teams
):
    # Each team beside every other team: two columns both called "name", and more rows
    # than teams, so a total counted from one table alone would be wrong.
    for n in range(4):
        await teams.create(name=f"Pair {n}")
    other = sa.orm.aliased(Team)
    statement = (
        sa.select(Team.name, other.name)
        .join(other, other.id != Team.id)
        .where(Team.name.startswith("Pair"), other.name.startswith("Pair"))
        .order_by(Team.name, other.name)
    )
    async with app.state.sessionmaker() as session:
        first = await paginate(session, statement, PageParams(page=1, size=5), tuple)
        last = await paginate(session, statement, PageParams(page=3, size=5), tuple)

    assert first.total == last.total == 12
    assert first.items[:2] == [("Pair 0", "Pair 1"), ("Pair 0", "Pair 2")]
    assert last.items == [("Pair 3", "Pair 1"), ("Pair 3", "Pair 2")]
    assert last.pages == 3


async def test_a_page_of_many_links_to_its_neighbours_in_both_languages(client, teams):
    """A list longer than one page renders its Previous and Next links (a template once
    shadowed gettext there, so every list past one page was a 500)."""
    from tests.fixtures.factories import browser_login

    await browser_login(client, await teams.admin())
    for n in range(60):  # three pages of 25
        await teams.create(name=f"Team {n:02d}")
    for language, previous, following in (("en", "Previous", "Next"), ("ko", "이전", "다음")):
        client.cookies.set("portal_lang", language)
        middle = await client.get("/admin/teams", params={"page": 2})
        assert middle.status_code == 200, middle.text[-500:]
        assert f"← {previous}</a>" in middle.text and f"{following} →</a>" in middle.text
        assert 'page=1" hx-get' in middle.text and 'page=3" hx-get' in middle.text
