"""Schema migrations through Alembic: ``odin db upgrade`` and ``odin dev`` both call ``upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from alembic import command
from odin.persistence.store import Database


def script_location() -> Path:
    """The ``alembic/`` folder beside the package (a checkout or editable install), or in the
    working directory (an app deployed from its repository, e.g. on Heroku)."""
    for candidate in (Path(__file__).resolve().parents[2] / "alembic", Path.cwd() / "alembic"):
        if (candidate / "env.py").is_file():
            return candidate
    raise RuntimeError("cannot find Odin's alembic/ migrations: run from the project's directory")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    return cfg


async def upgrade(db: Database, revision: str = "head") -> None:
    def run() -> None:
        with db.engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    await db.run(run)


async def is_up_to_date(db: Database) -> bool:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()

    def current() -> str | None:
        with db.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    return (await db.run(current)) == head
