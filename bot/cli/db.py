"""`keybot db ...`: schema migrations."""

from __future__ import annotations

import typer

from bot.cli.context import out, runtime

app = typer.Typer(help="Database schema management.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command() -> None:
    """Apply every pending migration (safe to run repeatedly)."""
    from bot.db.migrate import current_revision, upgrade
    from bot.db.session import Database

    database = Database(runtime().settings.database_url)
    before = current_revision(database.engine)
    upgrade(database.engine)
    after = current_revision(database.engine)
    if before == after:
        out.print(f"database already at revision {after}")
    else:
        out.print(f"database upgraded from {before or 'empty'} to {after}")
    database.dispose()


@app.command("status")
def status_command() -> None:
    """Show the schema revision of the database and of this keybot."""
    from bot.db.migrate import current_revision, head_revision
    from bot.db.session import Database

    database = Database(runtime().settings.database_url)
    out.print(f"database revision: {current_revision(database.engine) or 'empty'}")
    out.print(f"keybot needs:      {head_revision(database.engine)}")
    database.dispose()
