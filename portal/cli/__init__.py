"""The `portal` command.

Without PORTAL_DATABASE_URL / PORTAL_REDIS_URL every command uses the embedded servers
in the data directory (reusing those of a running `portal dev`), so the same commands
work on a laptop and against production services.

The whole command tree is put together here, in the order `portal --help` lists it;
the commands live in one module per group: `serve` (dev, serve, gateway), `evaluation`
(worker, eval-image), `database` (migrate), `backup` (backup, restore), `teams`
(admin, team) and `i18n` (the translation catalogs).
"""

from __future__ import annotations

import typer

from portal.cli import backup, database, evaluation, i18n, serve, teams

app = typer.Typer(
    help="Competition portal: run it, migrate it, manage teams.", no_args_is_help=True
)
app.add_typer(teams.admin_app, name="admin")
app.add_typer(teams.team_app, name="team")
app.command()(serve.dev)
app.command()(serve.serve)
app.command()(serve.gateway)
app.command()(evaluation.worker)
app.add_typer(evaluation.eval_image_app, name="eval-image")
app.command()(database.migrate)
app.command()(backup.backup)
app.command()(backup.restore)
app.add_typer(i18n.i18n_app, name="i18n")
