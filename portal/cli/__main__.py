"""`python -m portal.cli`: the same as the `portal` command."""

from portal.cli import app

app()
