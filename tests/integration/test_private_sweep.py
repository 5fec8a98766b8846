"""No participant or visitor ever sees private data: a whole competition on a real worker
(Docker), and in every phase every GET route of the app, as a visitor, with a bearer
token and with a browser session, with and without HTMX, with board and batch queries.

Private data: the private seeds (values chosen to appear nowhere else), what private runs
printed (each submission prints a marker derived from its input, so a private run's
output is recognisable), their per-seed scores and details. The final aggregate may
reach participants only once an admin has revealed it.
"""

from __future__ import annotations

import hashlib
import re
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta

import httpx
import sqlalchemy as sa

from portal.leaderboard.refresh import refresh
from tests.fixtures.clients import make_client
from tests.fixtures.competition import (
    at,
    configure,
    wait_for_final,
    wait_for_public_score,
    worker_context,
)
from tests.fixtures.evaluation import running_eval_worker, upload
from tests.fixtures.factories import browser_login
from tests.fixtures.routes import get_paths, mounts
from worker.kits import tsp

PUBLIC_SEEDS = [101, 202]
PRIVATE_SEEDS = [8642097531, 7531908642]
# Query strings every route is also asked with: the boards and batches by name.
QUERIES = ["", "?board=final", "?board=live", "?board=frozen", "?batch={final}", "?batch={public}"]
HTMX = ({}, {"HX-Request": "true"})
# Mounted apps serve files from the repository, never data.
NOT_SWEPT = {"/static": "static files from the repository"}


def solution(start: int) -> bytes:
    """Nearest neighbour from city `start`; prints a marker of its input and the seed."""
    return f"""import hashlib, json, math, sys
raw = open(sys.argv[1], "rb").read()
print("OUT-" + hashlib.sha256(raw).hexdigest()[:16])
data = json.loads(raw)
print("seed", data["seed"])
cities = data["cities"]
tour = [{start} % len(cities)]
left = set(range(len(cities))) - set(tour)
while left:
    here = cities[tour[-1]]
    tour.append(min(left, key=lambda i: math.dist(here, cities[i])))
    left.remove(tour[-1])
json.dump({{"tour": tour}}, open(sys.argv[2], "w"))
""".encode()


def marker(seed: int) -> str:
    return "OUT-" + hashlib.sha256(tsp.generate(seed)).hexdigest()[:16]


@dataclass
class Seen:
    who: str
    url: str
    htmx: bool
    status: int
    text: str


def fill(path: str, values: dict[str, list[int]]) -> list[str] | None:
    """Every URL of `path` with its parameters filled in; None when one has no values."""
    urls = [path]
    for name in re.findall(r"{(\w+)(?::\w+)?}", path):
        if name not in values:
            return None
        urls = [
            re.sub(r"{" + name + r"(?::\w+)?}", str(value), url)
            for url in urls
            for value in values[name]
        ]
    return urls


async def sweep(app, clients: dict[str, httpx.AsyncClient], values, batches) -> list[Seen]:
    seen = []
    for path in get_paths(app):
        urls = fill(path, values)
        assert urls is not None, f"the sweep has no value for a parameter of {path}"
        for url in urls:
            for query in QUERIES:
                for headers in HTMX:
                    target = url + query.format(**batches)
                    for who, client in clients.items():
                        response = await client.get(target, headers=headers)
                        seen.append(
                            Seen(
                                who,
                                target,
                                bool(headers),
                                response.status_code,
                                str(response.headers) + response.text,
                            )
                        )
    return seen


def containing(seen: list[Seen], tokens: list[str]) -> list[tuple[str, str, bool, str]]:
    return [(s.who, s.url, s.htmx, t) for s in seen for t in tokens if t in s.text]


def private_runs(context, batch_id: int) -> list:
    with context.sessions() as session:
        return session.execute(
            sa.text("SELECT seed, score, log, details FROM evaluation_run WHERE batch_id = :b"),
            {"b": batch_id},
        ).all()


def run_ids(context) -> list[int]:
    """Every run so far, public and private: the admin log pages of each are swept."""
    with context.sessions() as session:
        return list(session.scalars(sa.text("SELECT id FROM evaluation_run ORDER BY id")))


def final_scores(context, batch_id: int) -> dict[int, float]:
    """Each team's final score: the best mean of its picks on the private seeds."""
    with context.sessions() as session:
        rows = session.execute(
            sa.text(
                "SELECT team_id, max(mean_score) FROM batch_submission WHERE batch_id = :b "
                "GROUP BY team_id"
            ),
            {"b": batch_id},
        ).all()
    return dict(rows)


def score_tokens(score: float) -> list[str]:
    """How a score reads in JSON and on the pages."""
    return [repr(score), f"{score:.4f}"]


def with_headers(app, headers: dict[str, str]) -> httpx.AsyncClient:
    http = make_client(app)
    http.headers.update(headers)
    return http


def private_values(runs) -> list[str]:
    """Each private run's score and the kit's numbers about it (tour lengths), as text;
    only values long enough not to turn up by chance."""
    values = [run.score for run in runs]
    values += [v for run in runs for v in run.details.values() if isinstance(v, float)]
    return [text for text in map(repr, values) if len(text) >= 6]


async def test_no_private_data_reaches_participants_or_visitors_in_any_phase(
    app, client, teams, eval_settings
):
    async with AsyncExitStack() as stack:
        await walk_a_competition(app, client, teams, eval_settings, stack)


async def walk_a_competition(app, client, teams, eval_settings, stack: AsyncExitStack):
    context = worker_context(eval_settings)
    assert mounts(app) == list(NOT_SWEPT)
    admin = await teams.admin()
    alpha = await teams.create(name="Alpha")
    beta = await teams.create(name="Beta")
    await configure(client, admin, public_seeds=PUBLIC_SEEDS, private_seeds=PRIVATE_SEEDS)

    with running_eval_worker(eval_settings):
        own = [
            await upload(client, alpha, "a0.py", solution(0)),
            await upload(client, alpha, "a1.py", solution(7)),
        ]
        other = await upload(client, beta, "b0.py", solution(3))
        picked = await client.put(f"/api/v1/submissions/{own[1]}/final", headers=alpha.auth)
        assert picked.status_code == 200, picked.text
        for submission in own:
            assert (await wait_for_public_score(client, alpha, submission))["public_score"] > 1
        await wait_for_public_score(client, beta, other)

    visitor = await stack.enter_async_context(make_client(app))
    browser = await stack.enter_async_context(make_client(app))
    await browser_login(browser, alpha)
    bearer = await stack.enter_async_context(with_headers(app, alpha.auth))
    admin_client = await stack.enter_async_context(with_headers(app, admin.auth))
    clients = {"visitor": visitor, "bearer": bearer, "browser": browser}
    public_batch = (await client.get("/api/v1/competition/admin", headers=admin.auth)).json()[
        "public_batch_id"
    ]
    never = [str(seed) for seed in PRIVATE_SEEDS] + [marker(seed) for seed in PRIVATE_SEEDS]

    async def check(phase: str, final_batch: int | None = None) -> list[Seen]:
        refresh(context.engine, context.redis)  # the boards as current as they can be
        state = (await client.get("/api/v1/competition")).json()
        assert state["phase"] == phase.split()[0], state
        values = {
            "submission_id": [*own, other, 999_999],
            "team_id": [alpha.id, beta.id, admin.id],
            "batch_id": [public_batch, final_batch or 999_999],
            "run_id": [*run_ids(context), 999_999],
        }
        batches = {"final": final_batch or 999_999, "public": public_batch}
        seen = await sweep(app, clients, values, batches)
        assert containing(seen, never) == [], phase
        return seen

    seen = await check("open")
    # The markers are seen where the team may see its own output: its public runs' logs.
    assert containing(seen, [marker(PUBLIC_SEEDS[0])]), "the public runs' output was not found"

    await configure(client, admin, freeze_at=at(-timedelta(seconds=2)))
    await check("frozen")
    await configure(client, admin, ends_at=at(-timedelta(seconds=1)))
    await check("ended")

    # No worker: the final evaluation is queued, not yet run.
    started = await client.post("/api/v1/competition/final", headers=admin.auth)
    assert started.status_code == 202, started.text
    final_batch = started.json()["final_batch_id"]
    await check("final running", final_batch)

    with running_eval_worker(eval_settings):
        await wait_for_final(client, admin)
        runs = private_runs(context, final_batch)
        assert {run.seed for run in runs} == set(PRIVATE_SEEDS)
        assert all(marker(run.seed) in run.log for run in runs), "a private run printed no marker"
        # Private per-seed results: the scores and the kit's details of each private run.
        never += private_values(runs)
        finals = final_scores(context, final_batch)
        final_tokens = [token for score in finals.values() for token in score_tokens(score)]

        seen = await check("final finished", final_batch)
        leaks = containing(seen, final_tokens)
        assert leaks == [], sorted({url.partition("?")[0] for _, url, _, _ in leaks})
        # Admins see everything: the same sweep finds the private seeds for them.
        admin_seen = await sweep(
            app,
            {"admin": admin_client},
            {
                "submission_id": [*own, other],
                "team_id": [alpha.id],
                "batch_id": [public_batch, final_batch],
                "run_id": run_ids(context),
            },
            {"final": final_batch, "public": public_batch},
        )
        assert containing(admin_seen, [str(PRIVATE_SEEDS[0])])

        revealed = await client.post("/api/v1/competition/reveal", headers=admin.auth)
        assert revealed.status_code == 200, revealed.text
        seen = await check("revealed", final_batch)
    # Revealed: each team's final score is public (and still nothing private is).
    for team_id, score in finals.items():
        assert any(
            s.who == "visitor" and any(t in s.text for t in score_tokens(score)) for s in seen
        ), f"team {team_id}'s final score {score} is not shown after the reveal"
