"""CKD-progression inputs: a unitless value takes the unit its LOINC code implies, a value
that cannot be used is dropped *and named* in the result's warnings, and a patient with too
little left is "not assessable" with the reason instead of getting a number."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from fhir.resources.riskassessment import RiskAssessment

from dicom_node.encoders import encode_sidecar_report
from pipelines.base import PipelineError
from pipelines.prediction.codes import FEATURES
from pipelines.prediction.pipeline import CkdProgressionPipeline

DATA = Path(__file__).parents[1] / "data" / "prediction"
# every LOINC code the model reads, with the feature it feeds and the unit its property implies
CODES = [(code, feature.name, unit) for feature in FEATURES for code, unit in feature.loinc.items()]
# an ordinary value in each implied unit
TYPICAL = {"mL/min/{1.73_m2}": 45.0, "mg/dL": 1.8, "umol/L": 160.0, "%": 7.1, "mm[Hg]": 142.0, "mg/g": 80.0}
KIDNEY = "2024-01-10,2160-0,1.4,mg/dL\n"  # so that every feature's test patient is assessable


@pytest.fixture(scope="module")
def pipeline() -> CkdProgressionPipeline:
    return CkdProgressionPipeline()


def _csv(tmp_path: Path, name: str, rows: str, header: str = "timestamp,code,value,unit") -> Path:
    path = tmp_path / name
    path.write_text(f"{header}\n{rows}")
    return path


def test_every_code_the_model_reads_implies_a_unit_it_converts() -> None:
    assert {code for code, _, _ in CODES} >= {"2160-0", "14682-9", "98979-8", "8480-6", "9318-7", "4548-4"}
    assert all(unit in TYPICAL for _, _, unit in CODES)


@pytest.mark.parametrize(("code", "feature", "unit"), CODES)
def test_a_unitless_value_takes_the_unit_its_loinc_code_implies(
    pipeline: CkdProgressionPipeline, tmp_path: Path, code: str, feature: str, unit: str
) -> None:
    row = f"2024-02-01,{code},{TYPICAL[unit]},"
    unitless = pipeline.run(_csv(tmp_path, "unitless.csv", KIDNEY + row + "\n")).data
    explicit = pipeline.run(_csv(tmp_path, "explicit.csv", KIDNEY + row + unit + "\n")).data
    assert unitless["inputs_used"][feature] == explicit["inputs_used"][feature]
    assert unitless["risk"] == explicit["risk"] and unitless["warnings"] == []
    assert unitless["input"]["units_inferred"] == {f"{code} as {unit}": 1}
    assert explicit["input"]["units_inferred"] == {}


def test_unitless_molar_creatinine_is_read_in_umol_per_litre(pipeline: CkdProgressionPipeline, tmp_path: Path) -> None:
    # The case: 25 and 28 under LOINC 14682-9 (Creatinine [Moles/volume]) were read as
    # mg/dL, a failed kidney, and gave a risk of 0.96.
    rows = "2024-01-10,14682-9,25\n2024-06-10,14682-9,28\n"
    unitless = pipeline.run(_csv(tmp_path, "a.csv", rows, header="timestamp,code,value")).data
    stated = pipeline.run(_csv(tmp_path, "b.csv", rows.replace("\n", ",umol/L\n"))).data
    assert unitless["inputs_used"]["creatinine"]["last_value"] == pytest.approx(28 / 88.42, abs=1e-3)
    assert unitless["risk"] == stated["risk"]


def test_a_coded_unit_of_another_system_is_not_guessed(pipeline: CkdProgressionPipeline, tmp_path: Path) -> None:
    observation = {
        "resourceType": "Observation", "id": "cr1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-05-01T08:00:00Z",
        "valueQuantity": {"value": 150, "system": "http://snomed.info/sct", "code": "258718000"},
    }  # fmt: skip
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": observation}]}))
    with pytest.raises(PipelineError, match=r"Observation/cr1.*unit '258718000' not understood"):
        pipeline.run(path)


def test_an_implausible_value_is_dropped_and_named(pipeline: CkdProgressionPipeline, tmp_path: Path) -> None:
    rows = "2024-01-10,2160-0,1.6,mg/dL\n2024-03-02,98979-8,-12,\n2024-03-02,2160-0,1.7,mg/dL\n"
    result = pipeline.run(_csv(tmp_path, "neg.csv", rows))
    data = result.data
    assert data["status"] == "assessed" and 0.0 <= data["risk"] <= 1.0
    assert data["input"]["ignored"] == {"implausible egfr value": 1}
    assert "egfr" not in data["inputs_used"] and data["input"]["observations_used"] == 2
    (warning,) = data["warnings"]
    for part in ("eGFR", "LOINC 98979-8", "neg.csv line 3", "-12", "plausible range 1 to 200"):
        assert part in warning
    assert [i.text for i in result.report_items if i.name.value == "INPUT-DROPPED"] == [warning]
    assert f"Input value not used: {warning}" in [note["text"] for note in result.fhir[0]["note"]]
    assert "1 input value not used" in result.summary


def test_a_fhir_input_without_time_or_value_is_named(pipeline: CkdProgressionPipeline, tmp_path: Path) -> None:
    bundle = json.loads((DATA / "patient_bundle.json").read_text())
    egfr = [e["resource"] for e in bundle["entry"] if e["resource"].get("code", {}).get("coding", [{}])[0].get("code")
            == "98979-8"]  # fmt: skip
    egfr[0]["effectiveDateTime"] = "2024-03"  # a month, not a time
    del egfr[1]["valueQuantity"]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle))
    data = pipeline.run(path).data
    assert data["status"] == "assessed"
    assert data["input"]["ignored"]["no precise effective time"] == 1
    assert data["input"]["ignored"]["no numeric value"] == 1
    assert data["warnings"] == [
        f"eGFR (LOINC 98979-8, Observation/{egfr[0]['id']}): no precise effective time; not used",
        f"eGFR (LOINC 98979-8, Observation/{egfr[1]['id']}): no numeric value; not used",
    ]


@pytest.mark.parametrize(
    ("rows", "reason", "dropped"),
    [
        ("2024-01-10,98979-8,-5,\n2024-01-10,2160-0,0,mg/dL\n2024-01-10,8480-6,150,\n", "kidney function", 2),
        ("2024-01-10,8480-6,150,mm[Hg]\n", "kidney function", 0),
        ("2024-01-10,14682-9,-80,umol/L\n", "no usable", 1),
        ("", "no usable", 0),
    ],
)
def test_too_little_left_is_not_assessable(
    pipeline: CkdProgressionPipeline, tmp_path: Path, rows: str, reason: str, dropped: int
) -> None:
    result = pipeline.run(_csv(tmp_path, "few.csv", rows))
    data = result.data
    assert data["status"] == "not assessable" and data["risk"] is None
    assert reason in data["not_assessable_reason"] and len(data["warnings"]) == dropped
    assert "not assessable" in result.summary
    risk_items = [i for i in result.report_items if i.name.value == "CKD-RISK-12M"]
    assert [(i.value, i.text) for i in risk_items] == [(None, f"Not assessable: {data['not_assessable_reason']}")]
    assessment = RiskAssessment.model_validate(result.fhir[0])
    (prediction,) = assessment.prediction
    assert prediction.probabilityDecimal is None and prediction.rationale.startswith("Not assessable")


def test_not_assessable_before_the_first_observation(pipeline: CkdProgressionPipeline) -> None:
    data = pipeline.run(DATA / "patient.csv", index_date="2000-01-01").data
    assert data["status"] == "not assessable" and data["risk"] is None
    assert data["index_date"].startswith("2000-01-01") and data["input"]["ignored"]["after the index date"] > 0


def test_a_not_assessable_report_is_a_valid_sr(
    pipeline: CkdProgressionPipeline, tmp_path: Path, dciodvfy, dsrdump  # type: ignore[no-untyped-def]
) -> None:
    result = pipeline.run(_csv(tmp_path, "few.csv", "2024-01-10,98979-8,-5,\n2024-01-10,8480-6,150,\n"))
    path = tmp_path / "sr.dcm"
    encode_sidecar_report(result, {"PatientID": "CKD0001"}, None).save_as(path, enforce_file_format=True)
    dciodvfy(path)
    dsrdump(path)
    sr = pydicom.dcmread(path)
    assert sr.SpecificCharacterSet == "ISO_IR 100"
    items = {(i.ConceptNameCodeSequence[0].CodeValue, i.ValueType): i for i in sr.ContentSequence}
    assert ("CKD-RISK-12M", "NUM") not in items
    assert items["CKD-RISK-12M", "TEXT"].TextValue == f"Not assessable: {result.data['not_assessable_reason']}"
    assert items["INPUT-DROPPED", "TEXT"].TextValue == result.data["warnings"][0]


def test_many_dropped_values_are_all_in_the_json_and_summarised_in_the_reports(
    pipeline: CkdProgressionPipeline, tmp_path: Path
) -> None:
    rows = KIDNEY + "".join(f"2024-02-{day:02d},8480-6,-{day},mm[Hg]\n" for day in range(1, 26))
    result = pipeline.run(_csv(tmp_path, "bp.csv", rows))
    assert len(result.data["warnings"]) == 25 and result.data["input"]["ignored"] == {"implausible sbp value": 25}
    listed = [i.text for i in result.report_items if i.name.value == "INPUT-DROPPED"]
    assert listed[:-1] == result.data["warnings"][:19]
    assert listed[-1] == "6 more; the JSON result lists every one"
    assert len(result.fhir[0]["note"]) == 1 + 20
