"""`portal migrate`: the database schema."""

from __future__ import annotations

from typing import Annotated

import typer

from portal.cli.common import DataDirOption, load_settings
from portal.core.services import backing_services


def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
    data_dir: DataDirOption = None,
) -> None:
    """Upgrade the database schema (Alembic) to REVISION, by default the newest."""
    from portal.core import migrations

    settings = load_settings(data_dir)
    with backing_services(settings, with_redis=False) as urls:
        migrations.upgrade(urls.database_url, revision)
    typer.echo(f"Database migrated to {revision}.")
