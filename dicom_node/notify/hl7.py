"""HL7 v2.5.1 ORU^R01 "unsolicited observation result" for one AI result, built with hl7apy.

Segments: MSH, PID, PV1, ORC (SC, order status CM), OBR, TQ1 (priority), then OBX:

- a narrative summary (TX, LOINC 18782-3 "Radiology Study observation (narrative)");
- per SR Measurement Group (OBX-4 sub-ID = group number, so a lesion's lines stay together):
  its reading as text (TX), the finding, its site and each qualitative evaluation as coded
  values (CWE, the SR's own SNOMED CT / RadLex / DCM codes), and each measurement (NM) with its
  UCUM unit in OBX-6; a measurement the SR marks not assessable has no value and OBX-11 X;
- ``113014^DICOM Study^DCM`` (HD, ISO OIDs) carrying the Study Instance UID, then the SEG/SR
  SOP Instance UIDs, so the worklist can open the result in the viewer;
- the algorithm (IHE AIR): name, version and model as ST, its Device UID in OBX-18 of every
  result OBX and as the interpreter in OBR-32.

DICOM coding scheme designators (SCT, DCM, LN, UCUM, RADLEX) are written as HL7 table 0396
coding systems unchanged: the tables agree on these names. A failed pipeline gives the same
message with OBR-25 X and the reason as the only observation.
"""

from __future__ import annotations

import datetime as dt
import logging

from hl7apy.base_datatypes import ST
from hl7apy.core import Group, Message, Segment
from pydicom.uid import UID

from dicom_node.config import Hl7Destination
from dicom_node.notify.report import Concept, ResultReport

__all__ = ["DICOM_STUDY", "REPORT_NARRATIVE", "build_oru"]

log = logging.getLogger(__name__)

REPORT_NARRATIVE = Concept("18782-3", "LN", "Radiology Study observation (narrative)")
DICOM_STUDY = Concept("113014", "DCM", "DICOM Study")
ALGORITHM_NAME = Concept("111001", "DCM", "Algorithm Name")
ALGORITHM_VERSION = Concept("111003", "DCM", "Algorithm Version")
ALGORITHM_PARAMETERS = Concept("111002", "DCM", "Algorithm Parameters")
FINDING = Concept("121071", "DCM", "Finding")
FINDING_SITE = Concept("363698007", "SCT", "Finding Site")
_SEX = {"M": "M", "F": "F", "O": "O"}  # DICOM PatientSex → HL7 table 0001; anything else is U


def esc(text: str) -> str:
    """``text`` with HL7 delimiters escaped (\\F\\, \\S\\, …) by hl7apy, for one component."""
    return str(ST(text).to_er7()) if text else ""


def cwe(concept: Concept, text: str | None = None) -> str:
    """A CWE/CE value: identifier^text^coding system."""
    return "^".join((esc(concept.code), esc(text or concept.meaning), esc(concept.scheme)))


def _ts(date: str, time: str = "") -> str:
    """A DICOM DA (+ TM, fraction dropped) as an HL7 TS."""
    return date + time.split(".")[0] if date else ""


def _xpn(pn: str) -> str:
    """DICOM PN (family^given^middle^prefix^suffix, alphabetic group) as an HL7 XPN
    (family^given^second^suffix^prefix)."""
    parts = (pn.split("=")[0].split("^") + [""] * 5)[:5]
    family, given, middle, prefix, suffix = parts
    return "^".join(esc(p) for p in (family, given, middle, suffix, prefix)).rstrip("^")


def _segment(parent: Message | Group, name: str, fields: dict[int, str]) -> Segment:
    segment = parent.add_segment(name)
    for number, value in fields.items():
        if value:
            setattr(segment, f"{name.lower()}_{number}", value)
    return segment


class _Observations:
    """Adds OBX segments with consecutive set IDs (OBX-1)."""

    def __init__(self, order: Group, when: str, equipment: str) -> None:
        self.order = order
        self.when = when
        self.equipment = equipment
        self.count = 0

    def add(self, kind: str, name: Concept, value: str, sub_id: str = "", units: str = "",
            status: str = "P", name_text: str | None = None) -> None:  # fmt: skip
        self.count += 1
        group = self.order.add_group("ORU_R01_OBSERVATION")
        _segment(group, "OBX", {
            1: str(self.count), 2: kind, 3: cwe(name, name_text), 4: sub_id, 5: value, 6: units, 11: status,
            14: self.when, 18: self.equipment,
        })  # fmt: skip


def build_oru(report: ResultReport, dest: Hl7Destination, control_id: str, filler_order: str, now: dt.datetime) -> str:
    """The ER7 text of an ORU^R01 for ``report``; ``control_id`` (MSH-10) and ``filler_order``
    (ORC-3/OBR-3) are the caller's, stable across re-sends of the same notification."""
    when = now.strftime("%Y%m%d%H%M%S")
    msg = Message("ORU_R01", version=dest.version)
    _fill_msh(msg.msh, dest, control_id, when)
    result = msg.add_group("ORU_R01_PATIENT_RESULT")
    patient = result.add_group("ORU_R01_PATIENT")
    study = report.study
    _segment(patient, "PID", {
        1: "1", 3: f"{esc(study.patient_id)}^^^^PI" if study.patient_id else "", 5: _xpn(study.patient_name),
        7: study.birth_date, 8: _SEX.get(study.sex.upper(), "U"),
    })  # fmt: skip
    _segment(patient.add_group("ORU_R01_VISIT"), "PV1", {1: "1", 2: "U"})  # patient class unknown to the node
    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    filler = f"{esc(filler_order)}^{esc(dest.sending_application)}"
    _segment(order, "ORC", {1: "SC", 3: filler, 5: "CM", 9: when})
    priority = "S" if report.urgent else "R"
    algorithm = report.algorithm
    _segment(order, "OBR", {
        1: "1", 3: filler, 4: cwe(report.procedure) if report.procedure else esc(report.pipeline),
        7: _ts(study.study_date, study.study_time), 18: esc(study.accession_number),
        19: esc(study.accession_issuer), 22: when, 24: "RAD", 25: "X" if report.failure is not None else "P",
        27: f"^^^^^{priority}",
        32: "&".join(esc(p) for p in (algorithm.device_uid or algorithm.name, algorithm.name, algorithm.version)),
    })  # fmt: skip
    _segment(order.add_group("ORU_R01_TIMING_QTY"), "TQ1", {
        1: "1", 9: f"{priority}^{'Stat' if report.urgent else 'Routine'}^HL70485",
    })  # fmt: skip
    equipment = f"{esc(algorithm.name)}^{esc(dest.sending_application)}^{algorithm.device_uid}^ISO" if algorithm.device_uid else ""
    obx = _Observations(order, when, equipment)
    if report.failure is not None:
        obx.add("TX", REPORT_NARRATIVE, esc(report.summary()), status="X")
    else:
        _add_findings(obx, report)
    _add_references(obx, report)
    obx.add("ST", ALGORITHM_NAME, esc(algorithm.name))
    if algorithm.version:
        obx.add("ST", ALGORITHM_VERSION, esc(algorithm.version))
    if algorithm.model_name or algorithm.model_checksum:
        model = f"model={algorithm.model_name}; model_checksum={algorithm.model_checksum}"
        obx.add("ST", ALGORITHM_PARAMETERS, esc(model))
    return str(msg.to_er7())


def _fill_msh(msh: Segment, dest: Hl7Destination, control_id: str, when: str) -> None:
    for number, value in {
        3: esc(dest.sending_application), 4: esc(dest.sending_facility), 5: esc(dest.receiving_application),
        6: esc(dest.receiving_facility), 7: when, 9: "ORU^R01^ORU_R01", 10: esc(control_id), 11: "P",
        18: "UNICODE UTF-8",
    }.items():  # fmt: skip
        if value:
            setattr(msh, f"msh_{number}", value)


def _add_findings(obx: _Observations, report: ResultReport) -> None:
    obx.add("TX", REPORT_NARRATIVE, esc(report.summary()))
    for number, group in enumerate(report.groups, start=1):
        sub = str(number)
        obx.add("TX", FINDING, esc(group.text()), sub, name_text=f"Finding {group.tracking_id}")
        if group.finding is not None:
            obx.add("CWE", FINDING, cwe(group.finding), sub)
        if group.site is not None:
            obx.add("CWE", FINDING_SITE, cwe(group.site), sub)
        for evaluation in group.evaluations:
            obx.add("CWE", evaluation.name, cwe(evaluation.value), sub)
        for measure in group.measures:
            if measure.value is None:
                obx.add("NM", measure.name, "", sub, status="X", name_text=measure.label)
            else:
                units = cwe(measure.unit) if measure.unit else ""
                obx.add("NM", measure.name, f"{measure.value:.6g}", sub, units, name_text=measure.label)


def _add_references(obx: _Observations, report: ResultReport) -> None:
    """The DICOM study and the result objects, as ISO OIDs (HD: namespace^universal ID^ISO)."""
    obx.add("HD", DICOM_STUDY, f"^{report.study.study_uid}^ISO", status="F")
    for item in report.objects:
        obx.add("HD", DICOM_STUDY, f"{esc(_object_kind(item.sop_class_uid))}^{item.sop_instance_uid}^ISO", status="F")


def _object_kind(sop_class_uid: str) -> str:
    """The SOP class's name (Segmentation Storage, Comprehensive 3D SR Storage)."""
    return UID(sop_class_uid).name
