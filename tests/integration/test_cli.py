"""The `portal` command, run as a real process against real servers."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from portal.core.embedded import free_loopback_port
from tests.fixtures.cli import embedded_env, portal
from tests.fixtures.environment import PROJECT_ROOT
from tests.fixtures.metrics import parse


@pytest.fixture
def against_test_db(services) -> dict:
    return {"PORTAL_DATABASE_URL": services.database_url, "PORTAL_REDIS_URL": services.redis_url}


def test_every_command_has_help():
    from typer.testing import CliRunner

    from portal.cli import app

    assert "Usage:" in portal("--help").stdout  # the real entry point, once
    runner = CliRunner()
    for command in (
        ["dev"],
        ["serve"],
        ["worker"],
        ["migrate"],
        ["admin", "create"],
        ["team", "create"],
        ["team", "import"],
        ["team", "rotate-token"],
        ["team", "deactivate"],
        ["team", "activate"],
        ["backup"],
        ["restore"],
    ):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, command


async def test_team_create_prints_the_token_last_and_it_logs_in(client, against_test_db):
    result = portal(
        "team", "create", "--name", "X", "--email", "x@example.org", env=against_test_db
    )
    token = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"pt_[A-Za-z0-9_\-]{43}", token)
    response = await client.post(
        "/api/v1/auth/login", json={"email": "x@example.org", "api_token": token}
    )
    assert response.status_code == 200
    assert response.json()["team"]["name"] == "X"


async def test_admin_create_and_bad_input_errors(client, against_test_db):
    result = portal("admin", "create", "--email", "chief@example.org", env=against_test_db)
    token = result.stdout.strip().splitlines()[-1]
    me = await client.get("/api/v1/teams/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["role"] == "admin"
    duplicate = portal(
        "admin", "create", "--email", "chief@example.org", env=against_test_db, check=False
    )
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr
    bad = portal(
        "team", "create", "--name", "Y", "--email", "nope", env=against_test_db, check=False
    )
    assert bad.returncode == 1 and "email address like" in bad.stderr


async def test_team_import_creates_all_or_nothing(client, against_test_db, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,email\nOne,one@example.org\nTwo,not-an-email\n")
    result = portal("team", "import", str(bad), env=against_test_db, check=False)
    assert result.returncode == 1
    assert "line 3" in result.stderr and "nothing imported" in result.stderr
    login = await client.post(
        "/api/v1/auth/login", json={"email": "one@example.org", "api_token": "pt_x"}
    )
    assert login.status_code == 401

    good = tmp_path / "good.csv"
    good.write_text("name,email\nOne,one@example.org\nTwo,two@example.org\n")
    result = portal("team", "import", str(good), env=against_test_db)
    rows = [line.split(",") for line in result.stdout.strip().splitlines()]
    assert rows[0] == ["name", "email", "api_token"]
    assert [row[:2] for row in rows[1:]] == [["One", "one@example.org"], ["Two", "two@example.org"]]
    for name, email, token in rows[1:]:
        response = await client.post(
            "/api/v1/auth/login", json={"email": email, "api_token": token}
        )
        assert response.status_code == 200, name


async def test_rotate_token_and_deactivate_commands(client, teams, against_test_db):
    alpha = await teams.create(email="alpha@example.org")
    result = portal("team", "rotate-token", "--email", "alpha@example.org", env=against_test_db)
    new_token = result.stdout.strip().splitlines()[-1]
    assert (await client.get("/api/v1/teams/me", headers=alpha.auth)).status_code == 401
    headers = {"Authorization": f"Bearer {new_token}"}
    assert (await client.get("/api/v1/teams/me", headers=headers)).status_code == 200
    portal("team", "deactivate", "--email", "alpha@example.org", env=against_test_db)
    assert (await client.get("/api/v1/teams/me", headers=headers)).status_code == 401
    missing = portal(
        "team", "deactivate", "--email", "ghost@example.org", env=against_test_db, check=False
    )
    assert missing.returncode == 1 and "No team with email ghost@example.org" in missing.stderr


def _servers_using(data_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(data_dir) in cmdline and ("postgres" in cmdline or "redis-server" in cmdline):
            found.append(process)
    return found


def test_cli_uses_the_embedded_data_dir_when_no_database_url_is_set(tmp_path):
    data_dir = tmp_path / "portal-data"
    data_dir.mkdir()
    tmp_path.chmod(0o755)
    env = embedded_env(data_dir)
    create = ("team", "create", "--name", "Solo", "--email", "solo@example.org")
    portal(*create, env=env, replace_env=True)
    assert (data_dir / "postgres" / "PG_VERSION").exists()
    # The command stopped the server it started.
    assert _servers_using(data_dir) == []
    again = portal(*create, env=env, replace_env=True, check=False)
    assert again.returncode == 1 and "already exists" in again.stderr  # data persisted


def _wait_for_public_board(port: int, *, minimum_teams: int, wait_seconds: float) -> dict:
    deadline = time.monotonic() + wait_seconds
    board: dict = {}
    while time.monotonic() < deadline:
        board = httpx.get(f"http://127.0.0.1:{port}/api/v1/leaderboard").json()
        scored = [row for row in board.get("items", []) if row.get("score") is not None]
        if len(scored) >= minimum_teams:
            return board
        time.sleep(1)
    raise AssertionError(f"the public board did not fill within {wait_seconds} s: {board}")


def test_portal_dev_serves_seeds_persists_and_stops_everything(tmp_path):
    data_dir = tmp_path / "dev-data"
    tmp_path.chmod(0o755)
    port = free_loopback_port()
    env = embedded_env(data_dir)

    def start() -> tuple[subprocess.Popen, list[str]]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portal.cli",
                "dev",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=PROJECT_ROOT,
        )
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Portal running at" in line:
                break
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/login", timeout=1).status_code == 200:
                    return process, lines
            except httpx.HTTPError:
                time.sleep(0.2)
        process.kill()
        raise AssertionError("portal dev did not serve the login page:\n" + "".join(lines))

    def stop(process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    process, lines = start()
    try:
        output = "".join(lines)
        tokens = dict(re.findall(r"(\S+@example\.org)\s+(pt_\S+)", output))
        assert set(tokens) == {
            "admin@example.org",
            "alpha@example.org",
            "beta@example.org",
            "gamma@example.org",
            "delta@example.org",
        }
        login = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            json={"email": "alpha@example.org", "api_token": tokens["alpha@example.org"]},
        )
        assert login.status_code == 200
        (metrics_token,) = re.findall(r"Authorization: Bearer (\S+)'", output)
        assert _servers_using(data_dir), "embedded servers should be running"
        # A newcomer sees a live competition: open, and the demo uploads scored on the
        # public seeds by themselves, within a minute of the first start.
        competition = httpx.get(f"http://127.0.0.1:{port}/api/v1/competition").json()
        assert competition["phase"] == "open" and competition["public_seeds"]
        assert "private_seeds" not in competition
        board = _wait_for_public_board(port, minimum_teams=3, wait_seconds=60)
        order = [row["team_name"] for row in board["items"]]
        # 2-opt beats nearest neighbour beats the input order (examples/).
        assert order.index("Team Alpha") < order.index("Team Beta") < order.index("Team Gamma")
        assert "Organizers" not in order
        # The printed token opens /metrics, which counts the demo's scored runs.
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(metrics_url).status_code == 401
        bearer = {"Authorization": f"Bearer {metrics_token}"}
        scraped = parse(httpx.get(metrics_url, headers=bearer).text)
        assert scraped.value("portal_evaluation_runs_total", status="scored") > 0
    finally:
        stop(process)
    assert _servers_using(data_dir) == [], "SIGTERM must stop PostgreSQL and Redis"

    # Second start: data persisted, nothing re-seeded, the old token still works.
    process, lines = start()
    try:
        assert "Demo data already present" in "".join(lines)
        # The same metrics token as before: a local Prometheus keeps scraping.
        assert f"Authorization: Bearer {metrics_token}'" in "".join(lines)
        login = httpx.post(
            f"http://127.0.0.1:{port}/api/v1/auth/login",
            json={"email": "alpha@example.org", "api_token": tokens["alpha@example.org"]},
        )
        assert login.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C
        process.wait(timeout=60)
    assert _servers_using(data_dir) == [], "Ctrl-C must stop PostgreSQL and Redis"
