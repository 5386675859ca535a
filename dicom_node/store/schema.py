"""The index schema's versions: every process that opens the index brings it to the newest
Alembic revision (``dicom_node/store/migrations``) before using it.

Any number of replicas and workers may start at once on one empty database: the upgrade runs
under a database-wide lock — a PostgreSQL advisory lock, or an flock on a file beside a SQLite
database — so one of them creates the schema and the others find it made. Without the lock
two processes racing through ``CREATE TABLE patient`` left one dead with a UniqueViolation.

A database made before migrations existed (``create_all``, no ``alembic_version`` table) gets
the tables it lacks, as ``create_all`` gave them before, and is stamped with the newest
revision: its tables are then the models' (:func:`index_metadata`;
``tests/store/test_schema.py`` holds the newest revision to them), which that stamp says.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, func, inspect, select

from dicom_node.store.models import Base

__all__ = ["alembic_config", "head_revision", "index_metadata", "migrate"]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# pg_advisory_lock key: any 64-bit number no other user of the database takes; this one spells "dcmnode"
ADVISORY_LOCK_KEY = 0x64636D6E6F6465


@functools.cache
def index_metadata() -> MetaData:
    """Every table the index holds: the store's models and the de-identification keys, which
    :mod:`dicom_node.deid.keys` declares in a metadata of its own."""
    from dicom_node.deid.keys import _metadata as deid_tables  # its tables, not a public name yet

    combined = MetaData()
    for table in (*Base.metadata.tables.values(), *deid_tables.tables.values()):
        table.to_metadata(combined)
    return combined


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the index, bound to ``connection`` (``env.py`` runs on it)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head_revision() -> str:
    """The newest revision shipped with this version of the node."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS}")  # a broken install, not a user error
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine) -> None:
    """Bring the index behind ``engine`` to :func:`head_revision`; a no-op (one SELECT) when it
    is there already, so opening the index stays cheap."""
    with engine.connect() as connection:
        if _current(connection) == head_revision():
            return
    with _database_lock(engine) as connection:
        current = _current(connection)  # again: another process may have upgraded meanwhile
        if current == head_revision():
            return
        if current is None and inspect(connection).has_table("patient"):
            log.info("index made before schema migrations: adding missing tables, stamping revision %s", head_revision())
            index_metadata().create_all(connection)
            command.stamp(alembic_config(connection), "head")
            connection.commit()
            return
        log.info("upgrading the index schema from %s to %s", current or "empty", head_revision())
        command.upgrade(alembic_config(connection), "head")
        connection.commit()


@contextlib.contextmanager
def _database_lock(engine: Engine) -> Iterator[Connection]:
    """A connection holding the lock that serialises schema upgrades across processes/hosts."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(select(func.pg_advisory_lock(ADVISORY_LOCK_KEY)))
            connection.commit()
            try:
                yield connection
            finally:
                connection.rollback()
                connection.execute(select(func.pg_advisory_unlock(ADVISORY_LOCK_KEY)))
                connection.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        with engine.connect() as connection:  # one process owns an in-memory database
            yield connection
        return
    with open(f"{database}.migrate-lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            with engine.connect() as connection:
                yield connection
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
