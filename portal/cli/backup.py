"""`portal backup` and `portal restore`: the database and every stored object, in one
archive, against the configured services or the embedded ones in the data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from portal.cli.common import DataDirOption, fail, load_settings
from portal.core.services import backing_services


def backup(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Archive to write (.tar, or .tar.gz / .tgz to compress it)",
            dir_okay=False,
        ),
    ],
    data_dir: DataDirOption = None,
) -> None:
    """Back up the database (one consistent pg_dump) and every stored object into one
    archive with a manifest of sha256 checksums."""
    from portal.backup import service
    from portal.backup.errors import BackupError
    from portal.core.storage import StorageUnavailable, create_storage

    settings = load_settings(data_dir)
    with backing_services(settings, with_redis=False) as urls:
        try:
            manifest = service.backup(
                urls.database_url, create_storage(settings), settings.storage_backend, output
            )
        except (BackupError, StorageUnavailable) as exc:
            fail(str(exc))
    rows = sum(manifest.counts["tables"].values())
    typer.echo(
        f"Backed up {rows} rows in {len(manifest.counts['tables'])} tables and "
        f"{manifest.counts['objects']} objects (schema revision "
        f"{manifest.alembic_revision}) to {output}."
    )


def restore(
    archive: Annotated[
        Path, typer.Argument(help="Archive written by `portal backup`", dir_okay=False)
    ],
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace whatever the database and object storage already hold"
        ),
    ] = False,
    data_dir: DataDirOption = None,
) -> None:
    """Restore a backup into an empty database and object storage (verifying every
    checksum first). Refuses a target that holds data unless --force."""
    from portal.backup import service
    from portal.backup.errors import BackupError
    from portal.core.storage import StorageUnavailable, create_storage

    settings = load_settings(data_dir)
    try:
        # Before the database is even started: a damaged archive touches nothing.
        manifest = service.verify(archive)
        with backing_services(settings, with_redis=False) as urls:
            result = service.restore(
                archive, manifest, urls.database_url, create_storage(settings), force=force
            )
    except (BackupError, StorageUnavailable) as exc:
        fail(str(exc))
    typer.echo(
        f"Restored {sum(manifest.counts['tables'].values())} rows and "
        f"{manifest.counts['objects']} objects from {archive} "
        f"(made {manifest.created_at} by portal {manifest.portal_version})."
    )
    if result.needs_migrate:
        typer.echo(
            f"The schema is at revision {manifest.alembic_revision}; this portal's newest is "
            f"{result.head_revision}: run `portal migrate` before starting the portal."
        )
