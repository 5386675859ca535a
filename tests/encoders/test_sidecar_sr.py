"""Sidecar (non-imaging) results as a Comprehensive SR: valid, for the right patient and study."""

from __future__ import annotations

import pydicom
import pytest

from dicom_node import synthetic as syn
from dicom_node.encoders import encode_sidecar_report, sidecar_algorithm
from pipelines.base import Code, ReportItem, SidecarResult

from .helpers import content_items

PATIENT = {"PatientID": "GEN0001", "PatientName": "SYNTHETIC^GENOME", "BirthDate": "19800101", "Sex": "F"}


@pytest.fixture
def result() -> SidecarResult:
    return SidecarResult(
        pipeline="genomics-demo",
        version="0.2.0",
        summary="2 pathogenic variants",
        data={"variants": 2},
        report_title=Code("81247-9", "LN", "Master HL7 genetic variant reporting panel"),
        report_items=[
            ReportItem(Code("48018-6", "LN", "Gene studied [ID]"), text="BRCA1"),
            ReportItem(Code("81258-6", "LN", "Sample variant allelic frequency"), value=0.42,
                       unit=Code("1", "UCUM", "no units")),
            ReportItem(Code("75323-6", "LN", "Condition"), value=0.9, text="high risk"),
        ],
    )


def test_new_study_report_is_valid_and_deterministic(result: SidecarResult, save, dciodvfy, dsrdump) -> None:
    ds = encode_sidecar_report(result, PATIENT, None)
    path = save(ds, "sidecar_new_study")
    dciodvfy(path)
    dump = dsrdump(path)
    assert "BRCA1" in dump and "high risk" in dump

    back = pydicom.dcmread(path)
    assert back.SOPClassUID == pydicom.uid.ComprehensiveSRStorage
    assert (back.PatientID, str(back.PatientName), back.PatientBirthDate, back.PatientSex) == (
        "GEN0001", "SYNTHETIC^GENOME", "19800101", "F")
    assert back.ContentSequence is not None and back.ConceptNameCodeSequence[0].CodeValue == "81247-9"
    assert back.SeriesNumber == 910 and back.Modality == "SR"
    (frequency,) = [i for i in content_items(back, "Sample variant allelic frequency") if i.ValueType == "NUM"]
    assert float(frequency.MeasuredValueSequence[0].NumericValue) == pytest.approx(0.42)
    assert {i.ValueType for i in content_items(back, "Condition")} == {"NUM", "TEXT"}
    (summary,) = content_items(back, "Summary")
    assert summary.TextValue == "2 pathogenic variants"
    (observer,) = content_items(back, "Device Observer UID")
    assert observer.UID == sidecar_algorithm(result).device_uid

    again = encode_sidecar_report(result, PATIENT, None)
    assert (again.StudyInstanceUID, again.SeriesInstanceUID, again.SOPInstanceUID) == (
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    other_patient = encode_sidecar_report(result, {**PATIENT, "PatientID": "GEN0002"}, None)
    assert other_patient.StudyInstanceUID != ds.StudyInstanceUID
    other_job = encode_sidecar_report(result, PATIENT, None, job_key="sha256:input-2")
    assert other_job.SOPInstanceUID != ds.SOPInstanceUID


def test_report_joins_a_given_study(result: SidecarResult, save, dciodvfy, dsrdump) -> None:
    image = syn.ct_series(shape=(2, 16, 16), lesion_radius=None)[0]
    ds = encode_sidecar_report(result, image, image.StudyInstanceUID)
    path = save(ds, "sidecar_in_study")
    dciodvfy(path)
    dsrdump(path)
    back = pydicom.dcmread(path)
    assert back.StudyInstanceUID == image.StudyInstanceUID
    assert back.PatientID == image.PatientID
    assert back.AccessionNumber == image.AccessionNumber and back.StudyDate == image.StudyDate


def test_character_set_follows_the_text(result: SidecarResult, save, dciodvfy, dsrdump) -> None:
    latin = encode_sidecar_report(result, {**PATIENT, "PatientName": "MÜLLER^JÖRG"}, None)
    assert latin.SpecificCharacterSet == "ISO_IR 100"
    result.summary = "variant frequency ≥ 0.4"
    unicode = encode_sidecar_report(result, PATIENT, None)
    assert unicode.SpecificCharacterSet == "ISO_IR 192"
    path = save(unicode, "sidecar_utf8")
    dciodvfy(path)
    dsrdump(path)
    assert content_items(pydicom.dcmread(path), "Summary")[0].TextValue == "variant frequency ≥ 0.4"


def test_bad_input_is_refused(result: SidecarResult) -> None:
    with pytest.raises(ValueError, match="Patient ID"):
        encode_sidecar_report(result, {"PatientName": "NO^ID"}, None)
    result.report_items.append(ReportItem(Code("1", "99X", "Empty")))
    with pytest.raises(ValueError, match="neither"):
        encode_sidecar_report(result, PATIENT, None)
    result.report_items[-1] = ReportItem(Code("1", "99X", "Broken"), value=float("nan"))
    with pytest.raises(ValueError, match="non-finite"):
        encode_sidecar_report(result, PATIENT, None)
