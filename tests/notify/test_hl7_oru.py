"""A result reaches a RIS as an HL7 v2.5.1 ORU^R01 over MLLP: the peer is hl7apy's MLLP server
in a subprocess, and what it received is parsed here with python-hl7, not with the hl7apy
that built it. ACK paths: AA succeeds; AE, AR and silence are retried with back-off, then
dead-lettered with the reason on the timeline, and ``jobs retry`` sends the same message again."""

from __future__ import annotations

import hl7
import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select

from dicom_node.config import Settings
from dicom_node.queue import outbox
from dicom_node.queue.tasks import execute_job
from dicom_node.routing.router import Router
from dicom_node.store.filestore import FileStore
from dicom_node.store.index import Index
from dicom_node.store.local import store_dataset
from dicom_node.store.models import CompletionEvent, Job, JobEvent
from pipelines.base import ImagingResult, PipelineError

from .helpers import (
    STUDY,
    MllpPeer,
    index_of,
    make_settings,
    store_result,
    two_lesion_result,
)

SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."


def field(segment: hl7.Segment, number: int) -> str:
    return str(segment(number)) if len(segment) > number else ""


def component(segment: hl7.Segment, number: int, comp: int) -> str:
    """Component ``comp`` of field ``number`` (python-hl7 keeps a field without components as a str)."""
    parts = str(segment(number)).split("^") if len(segment) > number else []
    return parts[comp - 1] if len(parts) >= comp else ""


def obx_rows(message: hl7.Message) -> list[dict[str, str]]:
    rows = []
    for obx in message.segments("OBX"):
        rows.append({
            "type": field(obx, 2), "code": component(obx, 3, 1), "scheme": component(obx, 3, 3),
            "text": component(obx, 3, 2), "sub": field(obx, 4), "value": message.unescape(field(obx, 5)),
            "value_code": component(obx, 5, 1), "unit": component(obx, 6, 1), "unit_system": component(obx, 6, 3),
            "status": field(obx, 11), "equipment": field(obx, 18),
        })  # fmt: skip
    return rows


def sr_groups(sr: Dataset) -> list[Dataset]:
    """The SR's measurement groups, read with pydicom (independently of the node's reader)."""
    found, stack = [], list(sr.ContentSequence)
    while stack:
        item = stack.pop(0)
        if item.get("ConceptNameCodeSequence") and item.ConceptNameCodeSequence[0].CodeValue == "125007":
            found.append(item)
        stack.extend(item.get("ContentSequence", []))
    return found


def timeline(index: Index, job_id: int) -> list[tuple[str, str]]:
    with index.sessions() as session:
        return [(e.event, e.detail) for e in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))]


def job_row(index: Index, job_id: int) -> Job:
    with index.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


class FakePipeline:
    """The imaging pipeline's contract without a model: a fixed two-lesion result, or an error."""

    def __init__(self, error: str | None = None) -> None:
        self.error = error

    def run(self, datasets: list[Dataset]) -> ImagingResult:
        if self.error:
            raise PipelineError(self.error)
        return two_lesion_result(sorted(datasets, key=lambda ds: int(ds.InstanceNumber)))


def route_study(settings: Settings, index: Index, ct_source: list[Dataset]) -> int:
    """Store the CT as received, mark the study complete and route it; the pipeline job's id."""
    store = FileStore(settings.store_dir)
    for ds in ct_source:
        store_dataset(store, index, ds, made_by_node=False)
    with index.sessions.begin() as session:
        session.add(CompletionEvent(study_uid=STUDY.study_uid))
    assert Router(settings, index, queue_of=lambda name: "gpu", version_of=lambda name: "1.0").route_pending() == 1
    with index.sessions() as session:
        return session.scalars(select(Job.id).where(Job.kind == "pipeline")).one()


def notify_job_ids(index: Index) -> list[int]:
    with index.sessions() as session:
        return list(session.scalars(select(Job.id).where(Job.kind == "notify").order_by(Job.id)))


def test_a_routed_result_reaches_the_ris_as_an_oru_with_every_field(tmp_path, mllp_peer: MllpPeer, ct_source, monkeypatch):
    settings = make_settings(
        tmp_path, {"ris": mllp_peer.destination()},
        rules=[{"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct-lesion", "notify": ["ris"]}],
        pipelines={"ct-lesion": {"urgent_volume_ml": 0.1}},
    )  # fmt: skip
    index = index_of(settings)
    monkeypatch.setattr("dicom_node.jobs.imaging._pipeline", lambda name, bundle, device: FakePipeline())
    pipeline_job = route_study(settings, index, ct_source)
    assert job_row(index, pipeline_job).params["notify"] == ["ris"]

    assert execute_job(settings, index, pipeline_job) == "succeeded"
    [notify_id] = notify_job_ids(index)
    notice = job_row(index, notify_id)
    assert (notice.destination, notice.queue, notice.priority) == ("ris", "send", 0), "an urgent result goes first"
    assert execute_job(settings, index, notify_id) == "succeeded"

    [text] = mllp_peer.received()
    msg = hl7.parse(text)
    results = {r["sop_class_uid"]: r for r in job_row(index, pipeline_job).result["results"]}
    sr_uid = next(uid for cls, uid in ((c, r["sop_instance_uid"]) for c, r in results.items()) if cls.startswith(SR_PREFIX))
    seg_uid = results["1.2.840.10008.5.1.4.1.1.66.4"]["sop_instance_uid"]
    from pydicom import dcmread

    sr = dcmread(next(r["path"] for c, r in results.items() if c.startswith(SR_PREFIX)))

    msh = msg.segment("MSH")
    assert str(msh(9)) == "ORU^R01^ORU_R01" and str(msh(12)) == "2.5.1" and str(msh(11)) == "P"
    assert (str(msh(3)), str(msh(4)), str(msh(5)), str(msh(6))) == ("AI_NODE", "RAD", "RIS", "HOSP")
    assert str(msh(10)) == job_row(index, notify_id).result["control_id"] and len(str(msh(10))) <= 20

    pid = msg.segment("PID")
    assert component(pid, 3, 1) == STUDY.patient_id
    assert (component(pid, 5, 1), component(pid, 5, 2), component(pid, 5, 3)) == ("SYNTHETIC", "PAT", "M")
    assert (field(pid, 7), field(pid, 8)) == (STUDY.birth_date, "F")
    assert field(msg.segment("PV1"), 2)

    orc, obr = msg.segment("ORC"), msg.segment("OBR")
    assert (field(orc, 1), field(orc, 5)) == ("SC", "CM")
    assert component(obr, 3, 1) and component(obr, 3, 1) == component(orc, 3, 1)
    assert (component(obr, 4, 1), component(obr, 4, 3)) == ("25045-6", "LN"), "CT, unspecified body region (CID 100)"
    assert field(obr, 7) == STUDY.study_date + STUDY.study_time
    assert field(obr, 18) == STUDY.accession
    assert field(obr, 25) == "P"
    assert str(obr(27)(1)(6)) == "S" and component(msg.segment("TQ1"), 9, 1) == "S"
    interpreter = str(obr(32)(1)(1)).split("&")
    assert interpreter[1:3] == ["ct-lesion", "1.2.0"] and interpreter[0] == str(sr.ContributingEquipmentSequence[-1].DeviceUID)

    rows = obx_rows(msg)
    assert [int(str(o(1))) for o in msg.segments("OBX")] == list(range(1, len(rows) + 1))
    groups = sr_groups(sr)
    assert len(groups) == 2, "one measurement group per lesion"
    for number, group in enumerate(groups, start=1):
        mine = [r for r in rows if r["sub"] == str(number)]
        tracking = next(i.TextValue for i in group.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "112039")
        [text_row] = [r for r in mine if r["type"] == "TX"]
        assert tracking in text_row["value"] and "Present" in text_row["value"]
        assert {"code": "52988006", "scheme": "SCT"} in [{"code": r["value_code"], "scheme": "SCT"} for r in mine if r["code"] == "121071" and r["type"] == "CWE"]
        coded = {(r["code"], r["value_code"]) for r in mine if r["type"] == "CWE"}
        assert ("52988006", "52101004") in coded, "Lesion: Present (SNOMED CT, as in the SR)"
        assert ("260870009", "RID49480") in coded, "the urgent flag (RadLex) travels"
        for item in (i for i in group.ContentSequence if i.ValueType == "NUM"):
            name = item.ConceptNameCodeSequence[0]
            [row] = [r for r in mine if r["type"] == "NM" and r["code"] == name.CodeValue]
            value = item.MeasuredValueSequence[0]
            assert float(row["value"]) == pytest.approx(float(value.NumericValue), rel=1e-5)
            assert (row["unit"], row["unit_system"]) == (value.MeasurementUnitsCodeSequence[0].CodeValue, "UCUM")
    references = [r for r in rows if r["code"] == "113014" and r["scheme"] == "DCM"]
    assert [r["value"].split("^")[1] for r in references] == [STUDY.study_uid, *(r["sop_instance_uid"] for r in job_row(index, pipeline_job).result["results"])]
    assert {seg_uid, sr_uid} <= {r["value"].split("^")[1] for r in references}
    algorithm = {r["code"]: r["value"] for r in rows if r["scheme"] == "DCM" and r["code"] in ("111001", "111003", "111002")}
    assert algorithm["111001"] == "ct-lesion" and algorithm["111003"] == "1.2.0" and "sha256:0123abcd" in algorithm["111002"]
    assert all(str(sr.ContributingEquipmentSequence[-1].DeviceUID) in r["equipment"] for r in rows)

    events = timeline(index, notify_id)
    assert [e for e, _ in events] == ["created", "started", "finished"]
    assert "acknowledged AA by ris" in events[-1][1]


def test_ae_is_retried_with_the_same_control_id_until_accepted(tmp_path, mllp_peer: MllpPeer, result_objects):
    settings = make_settings(tmp_path, {"ris": mllp_peer.destination()})
    index = index_of(settings)
    [job_id] = store_result(settings, index, result_objects, ["ris"])
    mllp_peer.mode("AE", "PID-3 unknown to the RIS")
    assert execute_job(settings, index, job_id) == "retry"
    job = job_row(index, job_id)
    assert "MSA AE" in (job.error or "") and "PID-3 unknown to the RIS" in (job.error or "")
    assert job.next_attempt_at is not None, "a retry waits for its back-off"
    assert timeline(index, job_id)[-1][0] == "retry" and "PID-3 unknown" in timeline(index, job_id)[-1][1]
    mllp_peer.mode("AA")
    assert execute_job(settings, index, job_id) == "succeeded"
    first, second = (hl7.parse(m) for m in mllp_peer.received())
    assert str(first.segment("MSH")(10)) == str(second.segment("MSH")(10)), "a re-send keeps MSH-10"
    assert str(first.segment("OBR")(3)) == str(second.segment("OBR")(3))


@pytest.mark.parametrize(("mode", "expected"), [("AR", "order not found"), ("silent", "no ACK")])
def test_refusal_or_silence_ends_in_the_dead_letter_with_the_reason(tmp_path, mllp_peer: MllpPeer, result_objects, mode, expected):
    settings = make_settings(tmp_path, {"ris": mllp_peer.destination(ack_timeout_s=0.5)})
    index = index_of(settings)
    [job_id] = store_result(settings, index, result_objects, ["ris"])
    mllp_peer.mode(mode, "order not found")
    states = [execute_job(settings, index, job_id) for _ in range(settings.queue.max_attempts)]
    assert states == ["retry", "retry", "dead"]
    event, detail = timeline(index, job_id)[-1]
    assert event == "dead" and "attempts exhausted" in detail and expected in detail
    assert len(mllp_peer.received()) == 3
    mllp_peer.mode("AA")
    assert outbox.retry_by_hand(index, job_id), "jobs retry"
    patient = make_settings(tmp_path, {"ris": mllp_peer.destination()})  # a busy machine may take over 0.5 s to answer
    assert execute_job(patient, index, job_id) == "succeeded"


def test_a_ris_that_is_down_is_retried(tmp_path, result_objects):
    from tests.conftest import free_port

    settings = make_settings(tmp_path, {"ris": {"kind": "hl7", "host": "127.0.0.1", "port": free_port(), "connect_timeout_s": 1}})
    index = index_of(settings)
    [job_id] = store_result(settings, index, result_objects, ["ris"])
    assert execute_job(settings, index, job_id) == "retry"
    assert "cannot connect" in (job_row(index, job_id).error or "")


def test_a_failed_pipeline_tells_the_ris_with_obr25_x_and_the_reason(tmp_path, mllp_peer: MllpPeer, ct_source, monkeypatch):
    settings = make_settings(
        tmp_path, {"ris": mllp_peer.destination(send_failures=True)},
        rules=[{"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct-lesion", "notify": ["ris"]}],
    )  # fmt: skip
    index = index_of(settings)
    monkeypatch.setattr("dicom_node.jobs.imaging._pipeline", lambda name, bundle, device: FakePipeline("slices are not equally spaced"))
    pipeline_job = route_study(settings, index, ct_source)
    assert execute_job(settings, index, pipeline_job) == "dead"
    [notify_id] = notify_job_ids(index)
    assert execute_job(settings, index, notify_id) == "succeeded"
    [text] = mllp_peer.received()
    msg = hl7.parse(text)
    assert field(msg.segment("OBR"), 25) == "X"
    assert component(msg.segment("PID"), 3, 1) == STUDY.patient_id and field(msg.segment("OBR"), 18) == STUDY.accession
    [narrative] = [r for r in obx_rows(msg) if r["code"] == "18782-3"]
    assert narrative["status"] == "X" and "slices are not equally spaced" in narrative["value"]
    assert not [r for r in obx_rows(msg) if r["type"] == "NM"], "a failure has no measurements"


def test_no_failure_notice_unless_asked(tmp_path, mllp_peer: MllpPeer, ct_source, monkeypatch):
    settings = make_settings(
        tmp_path, {"ris": mllp_peer.destination()},
        rules=[{"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct-lesion", "notify": ["ris"]}],
    )  # fmt: skip
    index = index_of(settings)
    monkeypatch.setattr("dicom_node.jobs.imaging._pipeline", lambda name, bundle, device: FakePipeline("bad series"))
    assert execute_job(settings, index, route_study(settings, index, ct_source)) == "dead"
    assert notify_job_ids(index) == []
