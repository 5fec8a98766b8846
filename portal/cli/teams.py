"""`portal admin` and `portal team`: accounts, created and managed from the shell."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from portal.cli.common import (
    DataDirOption,
    fail,
    load_settings,
    request_board_refresh,
    run_in_transaction,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from portal.teams.models import Team

admin_app = typer.Typer(help="Admin accounts.", no_args_is_help=True)
team_app = typer.Typer(help="Participant teams.", no_args_is_help=True)


def _print_issued(team: Team, token: str) -> None:
    typer.echo(f"{team.role.capitalize()} {team.name!r} <{team.email}> (id {team.id}).")
    typer.echo("API token (shown once; the portal keeps only a hash):")
    typer.echo(token)


@admin_app.command("create")
def admin_create(
    email: Annotated[str, typer.Option(help="Admin's login email")],
    name: Annotated[str | None, typer.Option(help="Display name (default: from email)")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Create an admin account; prints its API token on the last line."""
    _create_team(name or email.split("@")[0], email, "admin", data_dir)


@team_app.command("create")
def team_create(
    name: Annotated[str, typer.Option(help="Team name (unique)")],
    email: Annotated[str, typer.Option(help="Team's login email (unique)")],
    data_dir: DataDirOption = None,
) -> None:
    """Create a participant team; prints its API token on the last line."""
    _create_team(name, email, "participant", data_dir)


def _create_team(name: str, email: str, role: str, data_dir: Path | None) -> None:
    from pydantic import ValidationError

    from portal.core.errors import validation_summary
    from portal.teams import service as teams
    from portal.teams.schemas import TeamCreate

    try:
        data = TeamCreate(name=name, email=email, role=role)
    except ValidationError as exc:
        fail(validation_summary(exc, with_field=False))

    async def work(session: AsyncSession) -> tuple[Team, str]:
        return await teams.create(session, data, actor=None)

    team, token = run_in_transaction(load_settings(data_dir), work, migrate=True)
    _print_issued(team, token)


@team_app.command("import")
def team_import(
    file: Annotated[Path, typer.Argument(help="CSV with name,email per line", exists=True)],
    data_dir: DataDirOption = None,
) -> None:
    """Create many teams from a CSV (name,email). All or nothing: any bad line creates none."""
    from pydantic import ValidationError

    from portal.core.errors import validation_summary
    from portal.teams import service as teams
    from portal.teams.schemas import TeamCreate

    rows: list[TeamCreate] = []
    problems: list[str] = []
    with file.open(newline="", encoding="utf-8-sig") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            if line_number == 1 and [c.strip().lower() for c in row[:2]] == ["name", "email"]:
                continue
            if len(row) != 2:
                problems.append(
                    f"line {line_number}: expected 2 columns (name,email), got {len(row)}"
                )
                continue
            try:
                rows.append(TeamCreate(name=row[0], email=row[1]))
            except ValidationError as exc:
                reason = validation_summary(exc, with_field=False)
                problems.append(f"line {line_number}: {reason}")
    emails = [r.email for r in rows]
    names = [r.name.lower() for r in rows]
    problems += [
        f"email {e} appears more than once"
        for e in sorted({e for e in emails if emails.count(e) > 1})
    ]
    problems += [
        f"name {n!r} appears more than once"
        for n in sorted({n for n in names if names.count(n) > 1})
    ]
    if problems:
        fail("nothing imported:\n  " + "\n  ".join(problems))
    if not rows:
        fail(f"{file} holds no teams")

    async def work(session: AsyncSession) -> list[tuple[Team, str]]:
        return [await teams.create(session, data, actor=None) for data in rows]

    created = run_in_transaction(load_settings(data_dir), work, migrate=True)
    writer = csv.writer(sys.stdout)
    writer.writerow(["name", "email", "api_token"])
    for team, token in created:
        writer.writerow([team.name, team.email, token])
    typer.echo(f"Imported {len(created)} teams. Tokens are shown once.", err=True)


@team_app.command("rotate-token")
def team_rotate_token(
    email: Annotated[str, typer.Option(help="Team's login email")],
    data_dir: DataDirOption = None,
) -> None:
    """Issue a new API token (the old one and all sessions stop working); prints it last."""
    from portal.teams import service as teams

    async def work(session: AsyncSession) -> tuple[Team, str]:
        team = await teams.require_by_email(session, email)
        return team, await teams.rotate_token(session, team, actor=None)

    team, token = run_in_transaction(load_settings(data_dir), work)
    _print_issued(team, token)


def _set_active(email: str, active: bool, data_dir: Path | None) -> None:
    from portal.teams import service as teams

    async def work(session: AsyncSession) -> Team:
        team = await teams.require_by_email(session, email)
        await teams.set_active(session, team, active, actor=None)
        return team

    settings = load_settings(data_dir)
    team = run_in_transaction(settings, work)
    # The running portal's workers refresh the boards: the team leaves (or rejoins) them.
    request_board_refresh(settings)
    typer.echo(f"Team {team.name!r} <{team.email}> {'activated' if active else 'deactivated'}.")


@team_app.command("deactivate")
def team_deactivate(
    email: Annotated[str, typer.Option(help="Team's login email")],
    data_dir: DataDirOption = None,
) -> None:
    """Deactivate a team: it can no longer log in and its sessions end at once."""
    _set_active(email, False, data_dir)


@team_app.command("activate")
def team_activate(
    email: Annotated[str, typer.Option(help="Team's login email")],
    data_dir: DataDirOption = None,
) -> None:
    """Re-activate a deactivated team."""
    _set_active(email, True, data_dir)
