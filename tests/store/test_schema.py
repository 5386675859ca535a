"""The index schema's migrations: the migrated schema is the models' (a model change without a
migration fails here, in dicom_node/store/models.py or any table index_metadata gathers), any number of processes may create it at once, and an index made
before migrations is taken over with its rows."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, func, select

from dicom_node.store.index import Index
from dicom_node.store.models import Base, Patient
from dicom_node.store.schema import head_revision, index_metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.sqlite'}"
        return
    with request.getfixturevalue("postgres_server").database() as database:
        yield database


def test_migrated_schema_is_the_models_schema(url):
    index = Index(url)
    try:
        with index.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, index_metadata()) == []
            assert context.get_current_revision() == head_revision()
    finally:
        index.close()


def test_many_processes_may_create_the_schema_at_once(url):
    """Before migrations ran under a lock, replicas started together on an empty PostgreSQL
    raced through CREATE TABLE and one died with UniqueViolation."""
    start, errors = threading.Barrier(6), []

    def open_index() -> None:
        start.wait()
        try:
            Index(url).close()
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_index) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []


def test_an_index_made_before_migrations_is_stamped_and_keeps_its_rows(url):
    engine = create_engine(url)
    legacy = [t for name, t in Base.metadata.tables.items() if name != "api_token"]
    Base.metadata.create_all(engine, tables=legacy)  # what create_all made on an older node, before migrations
    with engine.begin() as connection:
        connection.execute(Patient.__table__.insert().values(patient_id="P1", patient_name="DOE^JANE", birth_date="", sex=""))
    engine.dispose()
    index = Index(url)
    try:
        with index.engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() == head_revision()
            assert connection.scalar(select(func.count()).select_from(Patient.__table__)) == 1
            assert compare_metadata(MigrationContext.configure(connection), index_metadata()) == []
    finally:
        index.close()
