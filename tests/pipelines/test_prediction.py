"""CKD-progression sidecar: synthetic cohort, the shipped GRU-D against its model card, FHIR
and CSV inputs, irregular and missing data, malformed inputs and the training smoke run."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from fhir.resources.riskassessment import RiskAssessment

from pipelines import registry
from pipelines.base import PipelineError
from pipelines.prediction import train
from pipelines.prediction.cohort import (
    ckd_epi_2021,
    creatinine_for_egfr,
    generate_cohort,
    gfr_category,
)
from pipelines.prediction.evaluate import risk_metrics
from pipelines.prediction.model import RiskModel
from pipelines.prediction.pipeline import CkdProgressionPipeline
from pipelines.prediction.samples import INDEX_DATE, bundle_for, csv_for

DATA = Path(__file__).parents[1] / "data" / "prediction"


@pytest.fixture(scope="module")
def pipeline() -> CkdProgressionPipeline:
    return CkdProgressionPipeline()


@pytest.fixture(scope="module")
def model() -> RiskModel:
    return RiskModel.load()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_registered() -> None:
    assert registry.get("prediction") is CkdProgressionPipeline


def test_cohort_is_deterministic_for_a_seed() -> None:
    a, b, other = generate_cohort(150, 5), generate_cohort(150, 5), generate_cohort(150, 6)
    assert np.array_equal(a.labels, b.labels)
    for p, q in zip(a.patients, b.patients, strict=True):
        assert np.array_equal(p.times, q.times) and np.array_equal(p.values, q.values)
    assert not all(np.array_equal(p.values, q.values) for p, q in zip(a.patients, other.patients, strict=False))


def test_cohort_dynamics_are_plausible() -> None:
    cohort = generate_cohort(2000, 9)
    assert 0.05 < cohort.labels.mean() < 0.3
    assert cohort.labels[cohort.rapid].mean() > 2 * cohort.labels[~cohort.rapid].mean()
    assert (cohort.egfr_at_index >= 15).all()
    for p in cohort.patients[:50]:
        assert (p.times <= 0).all() and np.all(np.diff(p.times) >= 0)  # irregular, sorted, before index
        assert {0, 1} & set(p.features.tolist())  # kidney function measured at least once


def test_ckd_epi_inverse_and_categories() -> None:
    egfr = np.array([8.0, 25.0, 50.0, 95.0])
    age, female = np.array([70.0, 60.0, 50.0, 40.0]), np.array([True, False, True, False])
    assert np.allclose(ckd_epi_2021(creatinine_for_egfr(egfr, age, female), age, female), egfr)
    assert gfr_category(np.array([95.0, 60.0, 59.9, 44.0, 29.0, 14.9])).tolist() == [0, 1, 2, 3, 4, 5]


def test_shipped_model_meets_its_card_on_fresh_patients(model: RiskModel) -> None:
    card = model.metadata["metrics"]["test"]
    assert model.metadata["horizon_months"] == 12 and len(model.checksum) == 64
    cohort = generate_cohort(1500, 2024)  # a seed no training or card cohort used
    metrics = risk_metrics(cohort.labels, model.predict(cohort.patients))
    assert metrics["auc"] >= card["auc"] - 0.05
    assert metrics["brier"] < metrics["brier_prevalence_only"]


def test_batched_scoring_matches_one_by_one(model: RiskModel) -> None:
    patients = generate_cohort(20, 4).patients
    batched = model.predict(patients, batch_size=8)
    single = np.array([model.predict([p])[0] for p in patients])
    assert np.allclose(batched, single, atol=1e-5)


def test_fhir_bundle(pipeline: CkdProgressionPipeline) -> None:
    result = pipeline.run(DATA / "patient_bundle.json")
    data = result.data
    assert 0.0 <= data["risk"] <= 1.0 and data["horizon_months"] == 12
    assert data["input"]["format"] == "fhir-bundle"
    assert data["input"]["ignored"] == {"code not used: 718-7": 1, "not an Observation": 1}
    assert data["inputs_used"]["sbp"]["count"] > 0  # read from blood-pressure panel components
    risk_item = result.report_items[0]
    assert risk_item.name.value == "CKD-RISK-12M" and risk_item.unit.value == "%"
    assert risk_item.value == pytest.approx(100 * data["risk"], abs=0.06)
    (resource,) = result.fhir
    assessment = RiskAssessment.model_validate(resource)
    assert assessment.subject.reference == "Patient/synthetic-ckd-1"
    assert float(assessment.prediction[0].probabilityDecimal) == data["risk"]
    assert all(b.reference.startswith("Observation/synthetic-ckd-1-obs") for b in assessment.basis)


def test_csv_with_unit_conversion(pipeline: CkdProgressionPipeline) -> None:
    data = pipeline.run(DATA / "patient.csv").data
    assert data["input"]["format"] == "csv"
    assert 0.3 < data["inputs_used"]["creatinine"]["last_value"] < 15  # µmol/L became mg/dL


def test_fhir_and_csv_agree_with_the_model(pipeline: CkdProgressionPipeline, model: RiskModel, tmp_path: Path) -> None:
    cohort = generate_cohort(30, 21)
    series = cohort.patients[int(np.argmax(cohort.labels))]
    bundle = _write(tmp_path, "p.json", json.dumps(bundle_for(series, "p9")))
    table = _write(tmp_path, "p.csv", csv_for(series))
    expected = float(model.predict([series])[0])
    via_fhir = pipeline.run(bundle, index_date=INDEX_DATE.isoformat()).data["risk"]
    via_csv = pipeline.run(table, index_date=INDEX_DATE.isoformat()).data["risk"]
    assert via_fhir == pytest.approx(expected, abs=0.01)
    assert via_csv == pytest.approx(expected, abs=0.01)


def test_irregular_and_missing_values(pipeline: CkdProgressionPipeline, tmp_path: Path) -> None:
    path = _write(tmp_path, "sparse.csv", "timestamp,code,value\n"
                  "2021-01-03,2160-0,1.4\n2024-11-20T08:15:00+01:00,2160-0,2.1\n"
                  "2024-11-20T08:15:00+01:00,2160-0,2.2\n2025-02-01,718-7,13\n")  # fmt: skip
    data = pipeline.run(path).data
    assert data["input"]["observations_used"] == 3 and data["input"]["ignored"] == {"code not used: 718-7": 1}
    missing = data["missingness"]
    assert missing["visits"] == 2
    assert missing["features"]["creatinine"]["missing_fraction"] == 0.0
    assert missing["features"]["uacr"] == {"observed_visits": 0, "missing_fraction": 1.0, "days_since_last": None}


def test_entered_in_error_is_skipped(pipeline: CkdProgressionPipeline, tmp_path: Path) -> None:
    bundle = json.loads((DATA / "patient_bundle.json").read_text())
    bundle["entry"][1]["resource"]["status"] = "entered-in-error"
    data = pipeline.run(_write(tmp_path, "b.json", json.dumps(bundle))).data
    assert data["input"]["ignored"]["status entered-in-error"] == 1


def test_index_date_excludes_later_observations(pipeline: CkdProgressionPipeline) -> None:
    data = pipeline.run(DATA / "patient.csv", index_date="2024-01-01").data
    assert data["index_date"].startswith("2024-01-01")
    assert data["input"]["ignored"]["after the index date"] > 0


def test_patient_selection_in_a_multi_patient_bundle(pipeline: CkdProgressionPipeline, tmp_path: Path) -> None:
    one = json.loads((DATA / "patient_bundle.json").read_text())
    other = copy.deepcopy(one)
    for entry in other["entry"]:
        entry["fullUrl"] = entry["fullUrl"][:-4] + "beef"
        if "subject" in entry["resource"]:
            entry["resource"]["subject"]["reference"] = "Patient/someone-else"
    both = _write(tmp_path, "both.json", json.dumps({**one, "entry": one["entry"] + other["entry"]}))
    with pytest.raises(PipelineError, match="2 patients"):
        pipeline.run(both)
    result = pipeline.run(both, patient_id="synthetic-ckd-1")
    assert result.data["risk"] == pipeline.run(DATA / "patient_bundle.json").data["risk"]
    assert result.fhir[0]["subject"] == {"reference": "Patient/synthetic-ckd-1"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.json", "{not json", "not JSON"),
        ("a.json", '{"resourceType": "Patient"}', "not a FHIR Bundle"),
        ("a.json", ('{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": '
                    '{"resourceType": "Observation", "status": "final"}}]}'),
         "not a valid FHIR Bundle: entry.0.resource.code"),
        ("a.csv", "time,loinc,value\n2024-01-01,2160-0,1.2\n", "missing column"),
        ("a.csv", "timestamp,code,value\nyesterday,2160-0,1.2\n", "line 2"),
        ("a.csv", "timestamp,code,value\n2024-01-01,2160-0,high\n", "line 2"),
        ("a.csv", "timestamp,code,value,unit\n2024-01-01,2160-0,12,g/L\n", "unit 'g/L' not understood"),
        ("a.txt", "hello", "unsupported input"),
    ],
)  # fmt: skip
def test_malformed_input_raises(
    pipeline: CkdProgressionPipeline, tmp_path: Path, name: str, content: str, message: str
) -> None:
    with pytest.raises(PipelineError, match=message):
        pipeline.run(_write(tmp_path, name, content))


def test_missing_file_and_bad_parameters(pipeline: CkdProgressionPipeline, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="not found"):
        pipeline.run(tmp_path / "absent.json")
    with pytest.raises(PipelineError, match="index_date"):
        pipeline.run(DATA / "patient.csv", index_date="soon")
    with pytest.raises(PipelineError, match="unknown parameters"):
        pipeline.run(DATA / "patient.csv", horizon=24)


def test_smoke_training(tmp_path: Path) -> None:
    out = tmp_path / "smoke.pt"
    assert train.main(["--smoke", "--out", str(out)]) == 0
    smoke = RiskModel.load(out)
    risk = smoke.predict(generate_cohort(5, 1).patients)
    assert risk.shape == (5,) and ((risk >= 0) & (risk <= 1)).all()
