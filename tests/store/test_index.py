"""The index on SQLite and on a real PostgreSQL: upserts, completion with its quiet period and
re-completion, results that must not re-open a study."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from dicom_node.store.header import InstanceRecord
from dicom_node.store.index import Index
from dicom_node.store.models import CompletionEvent, Instance, Study, utcnow


@pytest.fixture(params=["sqlite", "postgresql"])
def index(request, tmp_path) -> Iterator[Index]:
    if request.param == "sqlite":
        idx = Index(f"sqlite:///{tmp_path / 'index.sqlite'}")
        yield idx
        idx.close()
        return
    with request.getfixturevalue("postgres_server").database() as url:
        idx = Index(url)
        yield idx
        idx.close()


def record(sop: str, series: str = "1.2.3.1", study: str = "1.2.3", at: dt.datetime | None = None, **kw) -> InstanceRecord:
    return InstanceRecord(
        sop_instance_uid=sop, sop_class_uid="1.2.840.10008.5.1.4.1.1.2", study_uid=study, series_uid=series,
        transfer_syntax="1.2.840.10008.1.2.1", path=f"/store/{sop}.dcm", size=100, patient_id="P1",
        patient_name="DOE^JANE", modality=kw.pop("modality", "CT"), received_at=at or utcnow(), **kw,
    )  # fmt: skip


def test_instances_are_upserted_and_summarised(index):
    index.add_instances([record("1.2.3.1.1"), record("1.2.3.1.2"), record("1.2.3.2.1", series="1.2.3.2", modality="SR")])
    index.add_instances([record("1.2.3.1.1", instance_number=7)])  # re-sent: replaces, never duplicates
    [summary] = index.studies()
    assert (summary.series, summary.instances, summary.modalities) == (2, 3, "CT\\SR")
    with index.sessions() as session:
        assert session.scalar(select(Instance.instance_number).where(Instance.sop_instance_uid == "1.2.3.1.1")) == 7


def test_study_completes_after_the_quiet_period_and_again_after_more_images(index):
    t0 = utcnow()
    index.add_instances([record("1.2.3.1.1", at=t0)])
    assert index.complete_due_studies(10, now=t0 + dt.timedelta(seconds=5)) == []
    assert index.complete_due_studies(10, now=t0 + dt.timedelta(seconds=11)) == ["1.2.3"]
    assert index.complete_due_studies(10, now=t0 + dt.timedelta(seconds=12)) == [], "complete once"
    index.add_instances([record("1.2.3.1.2", at=t0 + dt.timedelta(seconds=20))])
    assert index.complete_due_studies(10, now=t0 + dt.timedelta(seconds=25)) == []
    assert index.complete_due_studies(10, now=t0 + dt.timedelta(seconds=31)) == ["1.2.3"]
    with index.sessions() as session:
        assert session.scalar(select(CompletionEvent.id).where(CompletionEvent.forced).limit(1)) is None
        assert len(session.scalars(select(CompletionEvent)).all()) == 2


def test_forced_completion(index):
    index.add_instances([record("1.2.3.1.1")])
    assert index.force_complete("1.2.3") and not index.force_complete("9.9.9")
    with index.sessions() as session:
        assert session.scalar(select(CompletionEvent.forced)) is True


def test_results_made_by_the_node_do_not_reopen_the_study(index):
    t0 = utcnow() - dt.timedelta(seconds=60)
    index.add_instances([record("1.2.3.1.1", at=t0)])
    assert index.complete_due_studies(10) == ["1.2.3"]
    index.add_instances([record("1.2.3.9.1", series="1.2.3.9", modality="SEG", made_by_node=True)])
    assert index.complete_due_studies(0.0, now=utcnow() + dt.timedelta(seconds=1)) == []
    with index.sessions() as session:
        assert session.scalar(select(Study.modalities)) == "CT\\SEG"
