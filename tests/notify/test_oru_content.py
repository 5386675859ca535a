"""What the ORU says for results other than the urgent two-lesion one: a classification read
from its SR, a routine priority, a not-assessable measurement, an absent finding and text that
holds HL7 delimiters. Parsed with python-hl7."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import hl7
import numpy as np
import pytest

from dicom_node import synthetic as syn
from dicom_node.config import Hl7Destination, load_settings
from dicom_node.errors import DestinationError
from dicom_node.jobs.imaging import encode_result
from dicom_node.jobs.notify import control_id, filler_order
from dicom_node.notify import mllp
from dicom_node.notify.hl7 import build_oru
from dicom_node.notify.report import (
    Algorithm,
    Concept,
    Evaluation,
    FindingGroup,
    Measure,
    ResultObject,
    ResultReport,
    StudyFacts,
    read_report,
)
from dicom_node.store.models import Job
from pipelines.base import ClassificationOutput, Code, ImagingResult

from .helpers import STUDY

RIS = Hl7Destination(kind="hl7", host="127.0.0.1", port=2575)
NOW = dt.datetime(2026, 3, 15, 9, 0, 0)
NODULE = Code("427359005", "SCT", "Solitary nodule of lung")


def obx(message: hl7.Message) -> list[hl7.Segment]:
    return list(message.segments("OBX"))


def test_a_routine_classification_is_read_from_its_sr(tmp_path: Path):
    xray = syn.xray_instance(STUDY, size=64)
    yy, xx = np.mgrid[:64, :64]
    result = ImagingResult(
        pipeline="cxr-nodule", version="0.3.0", model_name="densenet-demo", model_checksum="sha256:feedbeef",
        source=[xray], classification=ClassificationOutput(NODULE, 0.62, 0.5, np.exp(-((yy - 30) ** 2 + (xx - 20) ** 2) / 50.0)),
    )  # fmt: skip
    heatmap, sr = encode_result(result, urgent=False)
    sr.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    objects = [ResultObject(str(ds.SOPInstanceUID), str(ds.SOPClassUID)) for ds in (heatmap, sr)]
    report = read_report(tmp_path / "sr.dcm", objects, "cxr-nodule")
    assert not report.urgent and report.has_findings
    [group] = report.groups
    assert {m.name.code: (m.value, m.unit.code if m.unit else None) for m in group.measures} == {
        "122157": (0.62, "{probability}"), "122411": (0.5, "{probability}"),
    }  # fmt: skip
    message = hl7.parse(build_oru(report, RIS, "CID1", "AI1", NOW))
    assert str(message.segment("OBR")(27)).split("^")[5] == "R"
    assert str(message.segment("TQ1")(9)).split("^")[0] == "R"
    values = {str(o(3)).split("^")[0]: (str(o(5)), str(o(6)).split("^")[0]) for o in obx(message) if str(o(2)) == "NM"}
    assert values == {"122157": ("0.62", "{probability}"), "122411": ("0.5", "{probability}")}
    coded = {(str(o(3)).split("^")[0], str(o(5)).split("^")[0]) for o in obx(message) if str(o(2)) == "CWE"}
    assert ("427359005", "52101004") in coded, "Solitary nodule of lung: Present"


def test_not_assessable_absent_and_delimiters_are_written_as_hl7_means_them():
    weird = "Lesion |1^a&b~c\\d"
    report = ResultReport(
        study=StudyFacts(study_uid="1.2.3", patient_id="P|1", patient_name="O^NEIL", sex="X"),
        pipeline="xr-seg", algorithm=Algorithm("xr-seg", "2.0", device_uid="1.2.3.4"),
        procedure=None,
        groups=[
            FindingGroup(weird, None, Concept("52988006", "SCT", "Lesion"), measures=[
                Measure(Concept("42798000", "SCT", "Area"), None, None,
                        not_assessable=Concept("114006", "DCM", "Measurement not attempted")),
            ], evaluations=[Evaluation(Concept("52988006", "SCT", "Lesion"), Concept("52101004", "SCT", "Present"))]),
            FindingGroup("Liver", None, Concept("10200004", "SCT", "Liver"),
                         evaluations=[Evaluation(Concept("10200004", "SCT", "Liver"), Concept("272519000", "SCT", "Absent"))]),
        ],
        objects=[], urgent=False,
    )  # fmt: skip
    message = hl7.parse(build_oru(report, RIS, "CID2", "AI2", NOW))
    pid = message.segment("PID")
    assert message.unescape(str(pid(3)).split("^")[0]) == "P|1"
    assert str(pid(5)).split("^")[:2] == ["O", "NEIL"] and str(pid(8)) == "U"
    [area] = [o for o in obx(message) if str(o(2)) == "NM"]
    assert str(area(5)) == "" and str(area(11)) == "X", "no value, result cannot be obtained"
    texts = [message.unescape(str(o(5))) for o in obx(message) if str(o(2)) == "TX"]
    assert texts[0] == "xr-seg: 1 finding(s): " + weird, "the absent liver is not a finding"
    assert texts[1].startswith(weird) and "Area: not assessable (Measurement not attempted)" in texts[1]
    assert "Liver: Absent" in texts[2]


def test_a_connect_timeout_says_so(monkeypatch):
    async def never(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(10)

    monkeypatch.setattr(mllp, "open_hl7_connection", never)
    with pytest.raises(DestinationError, match=r"cannot connect to 127.0.0.1:1: no connection within 0.1 s"):
        mllp.send_message("127.0.0.1", 1, "MSH|^~\\&|A", "C", connect_timeout_s=0.1)


def test_msh10_is_unique_per_notification_and_the_filler_order_per_analysis(tmp_path):
    settings = load_settings(data_dir=tmp_path, destinations={"ris": {"kind": "hl7", "host": "127.0.0.1", "port": 2575}})
    results = [{"sop_instance_uid": "1.2.3.4", "sop_class_uid": "1.2.840.10008.5.1.4.1.1.88.34", "path": "x"}]
    first, second = (Job(id=n, destination="ris", params={"results": results}) for n in (1, 2))
    assert control_id(settings, first) == control_id(settings, Job(id=1, destination="ris", params={"results": results}))
    assert control_id(settings, first) != control_id(settings, second)
    assert len(control_id(settings, first)) <= 20, "MSH-10 is ST(20) in v2.5.1"
    assert filler_order("1.2.3", "ct-lesion") == filler_order("1.2.3", "ct-lesion") != filler_order("1.2.3", "mr-lesion")


def test_the_accession_issuer_goes_beside_the_accession_number():
    report = ResultReport(StudyFacts(study_uid="1.2.3", accession_number="ACC1", accession_issuer="HOSP_A"), "p",
                          Algorithm("p", "1"), None, [], [], False)  # fmt: skip
    obr = hl7.parse(build_oru(report, RIS, "C", "F", NOW)).segment("OBR")
    assert (str(obr(18)), str(obr(19))) == ("ACC1", "HOSP_A")
