"""Issue 12 item 5 without a PACS: a series sent again with the same content creates no second
pipeline job for the same pipeline version (its study's timeline says so), new content or a new
version does, and the node's own SEG/SR coming back are never routed — recognised by the index's
record or by their Contributing Equipment, not by their modality.
(tests/e2e/test_orthanc_autoroute.py: the same with a real Orthanc auto-routing.)"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select, update

from dicom_node.encoders import AlgorithmInfo, encode_segmentation, encode_segmentation_report
from dicom_node.routing.dry_run import dry_run
from dicom_node.routing.provenance import identifies_node
from dicom_node.store.models import Instance, Job, ProcessedInput
from dicom_node.synthetic import StudySpec, ct_series
from pipelines.base import Code, ImagingResult, SegmentationOutput, SegmentLabel
from tests.routing.helpers import Routing, routing

CT_RULE = {"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct_seg"}
# stands for a pipeline fed with other AIs' results: the node's own must never reach it
AI_RESULTS_RULE = {"name": "ai-results", "match": {"Modality": ["SEG", "SR"]}, "pipeline": "mr_seg"}
LESION = SegmentLabel("Lesion", Code("49755003", "SCT", "Morphologically Abnormal Structure"), Code("52988006", "SCT", "Lesion"))


@pytest.fixture(params=["sqlite", "postgresql"])
def r(request, tmp_path: Path) -> Iterator[Routing]:
    rules = [CT_RULE, AI_RESULTS_RULE]
    if request.param == "sqlite":
        made = routing(tmp_path, rules)
        yield made
        made.index.close()
        return
    with request.getfixturevalue("postgres_server").database() as url:
        made = routing(tmp_path, rules, database_url=url)
        yield made
        made.index.close()


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Routing]:
    made = routing(tmp_path, [CT_RULE, AI_RESULTS_RULE])
    yield made
    made.index.close()


def _ct(spec: StudySpec | None = None, slices: int = 3) -> list[Dataset]:
    return ct_series(spec or StudySpec(), shape=(slices, 16, 16), lesion_radius=None)


def _results(source: list[Dataset]) -> list[Dataset]:
    """The SEG and SR a pipeline job makes of ``source``, with the node's encoders."""
    mask = np.zeros((len(source), 16, 16), dtype=np.uint8)
    mask[:, 4:8, 4:8] = 1
    result = ImagingResult(
        pipeline="ct_seg", version="1.0.0", model_name="unet-demo", model_checksum="sha256:00", source=source,
        segmentation=SegmentationOutput(mask=mask, labels={1: LESION}),
    )  # fmt: skip
    algorithm = AlgorithmInfo.from_result(result)
    seg = encode_segmentation(result, algorithm)
    return [seg, encode_segmentation_report(result, seg, algorithm, urgent=False)]


def _set_state(r: Routing, job_id: int, state: str) -> None:
    with r.index.sessions.begin() as session:
        session.execute(update(Job).where(Job.id == job_id).values(state=state))


def test_a_series_sent_again_creates_no_second_job_and_the_timeline_says_why(r: Routing):
    ct = _ct()
    study_uid = str(ct[0].StudyInstanceUID)
    r.keep(ct)
    assert r.route(study_uid) == 1
    [job] = r.pipeline_jobs(study_uid)
    for state in ("pending", "running", "succeeded"):  # in hand or done: nothing new either way
        _set_state(r, job.id, state)
        r.keep(ct)  # the same instances again, as a PACS auto-routing the study sends them
        assert r.route(study_uid) == 0, state
    assert [j.id for j in r.pipeline_jobs(study_uid)] == [job.id]
    notes = [d for e, d in r.timeline(study_uid) if e == "already processed"]
    assert len(notes) == 3 and all(f"job {job.id}" in d and "1.0.0" in d and "3 instances" in d for d in notes), notes
    with r.index.sessions() as session:
        [row] = session.scalars(select(ProcessedInput)).all()
    assert (row.job_id, row.pipeline, row.version, row.instances) == (job.id, "ct_seg", "1.0.0", 3)


def test_new_instances_in_the_series_run_the_pipeline_again(lite: Routing):
    ct = _ct(slices=4)
    study_uid = str(ct[0].StudyInstanceUID)
    lite.keep(ct[:3])
    assert lite.route(study_uid) == 1
    lite.keep(ct[3:])  # the series changed: one more instance
    assert lite.route(study_uid) == 1
    assert len(lite.pipeline_jobs(study_uid)) == 2


def test_a_new_pipeline_version_runs_again(lite: Routing):
    ct = _ct()
    study_uid = str(ct[0].StudyInstanceUID)
    lite.keep(ct)
    assert lite.route(study_uid) == 1
    lite.version = "1.1.0"
    lite.keep(ct)
    assert lite.route(study_uid) == 1


@pytest.mark.parametrize("state", ["dead", "cancelled"])
def test_sending_a_series_again_retries_a_job_that_did_not_process_it(lite: Routing, state: str):
    ct = _ct()
    study_uid = str(ct[0].StudyInstanceUID)
    lite.keep(ct)
    assert lite.route(study_uid) == 1
    [job] = lite.pipeline_jobs(study_uid)
    _set_state(lite, job.id, state)
    lite.keep(ct)
    assert lite.route(study_uid) == 1
    assert len(lite.pipeline_jobs(study_uid)) == 2


def test_the_nodes_results_sent_back_stay_its_own_and_are_not_routed(r: Routing):
    ct = _ct()
    study_uid = str(ct[0].StudyInstanceUID)
    r.keep(ct)
    assert r.route(study_uid) == 1
    results = _results(ct)
    r.keep(results, made_by_node=True)  # as the pipeline job stores them
    r.keep([*ct, *results])  # a PACS sends the whole study back

    assert r.route(study_uid) == 0
    assert len(r.pipeline_jobs(study_uid)) == 1
    with r.index.sessions() as session:
        made = session.scalars(select(Instance.sop_instance_uid).where(Instance.made_by_node)).all()
    assert set(made) == {str(ds.SOPInstanceUID) for ds in results}, "receiving them again keeps the record"
    own = [d for e, d in r.timeline(study_uid) if e == "own result"]
    assert sorted(d.split(" (")[1].split(")")[0] for d in own) == ["SEG", "SR"], own


def test_the_nodes_results_are_recognised_without_its_record(lite: Routing):
    """The index forgot (store purged, index rebuilt): the results' Contributing Equipment says."""
    ct = _ct()
    results = _results(ct)
    assert all(identifies_node(ds) for ds in results)
    lite.keep(results)
    assert lite.route(str(ct[0].StudyInstanceUID)) == 0
    assert len([e for e, _ in lite.timeline(str(ct[0].StudyInstanceUID)) if e == "own result"]) == 2


def test_another_ais_seg_is_routed_like_any_instance(lite: Routing):
    ct = _ct()
    other = copy.deepcopy(_results(ct)[0])
    other.SeriesInstanceUID, other.SOPInstanceUID = generate_uid(), generate_uid()
    other.file_meta.MediaStorageSOPInstanceUID = other.SOPInstanceUID
    for item in other.ContributingEquipmentSequence:
        item.Manufacturer = "Another AI Vendor"
    assert not identifies_node(other)
    lite.keep([other])
    assert lite.route(str(ct[0].StudyInstanceUID)) == 1
    [job] = lite.pipeline_jobs(str(ct[0].StudyInstanceUID))
    assert (job.series_uid, job.rule) == (str(other.SeriesInstanceUID), "ai-results")


def test_a_dry_run_names_the_nodes_results_as_not_routed(lite: Routing):
    ct = _ct()
    results = _results(ct)
    lite.keep(ct)
    lite.keep(results, made_by_node=True)

    run = dry_run(lite.settings, str(ct[0].StudyInstanceUID), index=lite.index)

    assert run is not None and list(run.series) == [str(ct[0].SeriesInstanceUID)]
    assert run.not_routed == {str(ds.SeriesInstanceUID): "made by the node" for ds in results}
    assert [j.rule for j in run.plan.jobs] == ["ct"]
