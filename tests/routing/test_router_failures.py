"""Issue 12 item 1, routing side: one bad instance, file or event must not stop routing. The
failing series is quarantined (its study's timeline and a WARNING say why, without PHI), every
other series and study is routed, and the quarantined series is routed again once the study
completes again (new instances, or ``dicom-node complete``).

Bad instances are written into the store and index directly: the receive side refuses them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select

from dicom_node.receive.wire import file_meta
from dicom_node.routing.dry_run import dry_run
from dicom_node.store.header import InstanceRecord
from dicom_node.store.models import CompletionEvent, Series
from dicom_node.synthetic import StudySpec, ct_series, mr_series
from tests.receive.mutate import corpus
from tests.routing.helpers import Routing, routing

CT_RULE = {"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct_seg"}
BITS_ALLOCATED_US = b"\x28\x00\x00\x01US"  # (0028,0100) in explicit VR little endian
PATIENT = "QUARANTINE^PATIENT"


def _ct(spec: StudySpec | None = None, slices: int = 3) -> list[Dataset]:
    return ct_series(spec or StudySpec(), shape=(slices, 16, 16), lesion_radius=None)


def _corrupt_vr(path: str) -> None:
    """(0028,0100) Bits Allocated's VR US → WS, as in the issue: pydicom cannot read it."""
    data = Path(path).read_bytes()
    assert data.count(BITS_ALLOCATED_US) == 1
    Path(path).write_bytes(data.replace(BITS_ALLOCATED_US, b"\x28\x00\x00\x01WS"))


def _series_routed(r: Routing, series_uid: str) -> bool:
    with r.index.sessions() as session:
        return session.scalar(select(Series.routed_at).where(Series.series_uid == series_uid)) is not None


@pytest.fixture(params=["sqlite", "postgresql"])
def r(request, tmp_path: Path) -> Iterator[Routing]:
    if request.param == "sqlite":
        made = routing(tmp_path, [CT_RULE])
        yield made
        made.index.close()
        return
    with request.getfixturevalue("postgres_server").database() as url:
        made = routing(tmp_path, [CT_RULE], database_url=url)
        yield made
        made.index.close()


def test_a_corrupted_vr_is_quarantined_and_the_next_study_is_routed(r: Routing, caplog):
    bad = _ct(StudySpec(patient_name=PATIENT))
    for record in r.keep(bad):
        _corrupt_vr(record.path)
    good = _ct()
    r.keep(good)
    bad_uid, good_uid = str(bad[0].StudyInstanceUID), str(good[0].StudyInstanceUID)

    with caplog.at_level(logging.WARNING, logger="dicom_node.routing"):
        assert r.route(bad_uid, good_uid) == 1

    [job] = r.pipeline_jobs(good_uid)
    assert job.series_uid == str(good[0].SeriesInstanceUID)
    assert r.pipeline_jobs(bad_uid) == []
    with r.index.sessions() as session:
        assert all(e.routed_at for e in session.scalars(select(CompletionEvent)))
    [detail] = [d for e, d in r.timeline(bad_uid) if e == "quarantined"]
    assert str(bad[0].SeriesInstanceUID) in detail
    assert "(0028,0100)" in detail and "Unknown Value Representation 'WS'" in detail
    assert "dicom-node complete" in detail, "the timeline says how to route it again"
    [warning] = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
    assert bad_uid in warning.getMessage() and "(0028,0100)" in warning.getMessage()
    assert PATIENT not in caplog.text and "QUARANTINE" not in caplog.text


def test_the_rest_of_the_study_routes_and_the_quarantined_series_routes_once_repaired(r: Routing):
    spec = StudySpec()
    broken, fine = _ct(spec), _ct(spec)
    records = r.keep(broken)
    originals = {rec.path: Path(rec.path).read_bytes() for rec in records}
    for rec in records:
        _corrupt_vr(rec.path)
    r.keep(fine)
    study_uid = spec.study_uid

    assert r.route(study_uid) == 1
    assert [j.series_uid for j in r.pipeline_jobs(study_uid)] == [str(fine[0].SeriesInstanceUID)]
    assert not _series_routed(r, str(broken[0].SeriesInstanceUID)), "quarantined: still to be routed"

    for path, data in originals.items():
        Path(path).write_bytes(data)
    assert r.route(study_uid) == 1  # dicom-node complete: the study completes again, and routes
    assert [j.series_uid for j in r.pipeline_jobs(study_uid)] == [str(s[0].SeriesInstanceUID) for s in (fine, broken)]


def test_a_file_gone_from_the_store_is_quarantined(r: Routing):
    gone, good = _ct(), _ct()
    for record in r.keep(gone):
        Path(record.path).unlink()
    r.keep(good)
    gone_uid, good_uid = str(gone[0].StudyInstanceUID), str(good[0].StudyInstanceUID)

    assert r.route(gone_uid, good_uid) == 1
    assert len(r.pipeline_jobs(good_uid)) == 1
    [detail] = [d for e, d in r.timeline(gone_uid) if e == "quarantined"]
    assert "No such file" in detail


def test_an_event_that_fails_to_plan_is_recorded_and_the_others_are_routed(tmp_path: Path, caplog):
    """A rule naming a pipeline that is not installed fails its study's event as a whole."""
    r = routing(tmp_path, [CT_RULE, {"name": "mr", "match": {"Modality": "MR"}, "pipeline": "not_installed"}])
    mr = mr_series(StudySpec(patient_name=PATIENT), shape=(2, 16, 16), lesion_radius=None)
    ct = _ct()
    r.keep(mr)
    r.keep(ct)
    mr_uid, ct_uid = str(mr[0].StudyInstanceUID), str(ct[0].StudyInstanceUID)

    with caplog.at_level(logging.WARNING, logger="dicom_node.routing"):
        assert r.route(mr_uid, ct_uid) == 1

    assert len(r.pipeline_jobs(ct_uid)) == 1
    [detail] = [d for e, d in r.timeline(mr_uid) if e == "route failed"]
    assert "not_installed" in detail and f"dicom-node complete {mr_uid}" in detail
    assert not _series_routed(r, str(mr[0].SeriesInstanceUID)), "nothing of the failed event was half-routed"
    assert any(mr_uid in rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING)
    assert PATIENT not in caplog.text


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's, on the damaged values
def test_damaged_files_in_the_store_never_stop_a_router_round(r: Routing):
    """Every kind of damage of the receive side's fuzz corpus, stored without its checks, one
    study each: each event is consumed (routed or quarantined) and the normal study is routed."""
    mutants = list(corpus(seed=12, per_kind=8))
    records = []
    for n, mutant in enumerate(mutants):
        path = r.store.root / "mutants" / f"{n}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file_meta(mutant.sop_class, mutant.sop_instance, mutant.transfer_syntax) + mutant.data_set)
        records.append(InstanceRecord(
            sop_instance_uid=f"1.2.826.0.1.3680043.10.1.{n}", sop_class_uid=mutant.sop_class, study_uid=f"1.2.826.0.1.3680043.10.2.{n}",
            series_uid=f"1.2.826.0.1.3680043.10.3.{n}", transfer_syntax=mutant.transfer_syntax, path=str(path), modality="CT",
        ))  # fmt: skip
    r.index.add_instances(records)
    good = _ct()
    r.keep(good)

    r.route(*(rec.study_uid for rec in records), str(good[0].StudyInstanceUID))

    assert len(r.pipeline_jobs(str(good[0].StudyInstanceUID))) == 1
    with r.index.sessions() as session:
        assert all(e.routed_at for e in session.scalars(select(CompletionEvent)))
    quarantined = sum(1 for rec in records if any(e == "quarantined" for e, _ in r.timeline(rec.study_uid)))
    assert quarantined > 10, "the corpus has teeth: some of it cannot be read"


def test_a_dry_run_shows_the_quarantined_series_instead_of_failing(r: Routing):
    spec = StudySpec()
    broken, fine = _ct(spec), _ct(spec)
    for record in r.keep(broken):
        _corrupt_vr(record.path)
    r.keep(fine)

    run = dry_run(r.settings, spec.study_uid, index=r.index)

    assert run is not None and list(run.series) == [str(fine[0].SeriesInstanceUID)]
    assert "Unknown Value Representation 'WS'" in run.not_routed[str(broken[0].SeriesInstanceUID)]
    assert [j.series_uid for j in run.plan.jobs] == [str(fine[0].SeriesInstanceUID)]
