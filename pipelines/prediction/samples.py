"""Write synthetic patients as the inputs the pipeline reads: a FHIR R5 Bundle of
Observations and a ``timestamp,code,value,unit`` CSV.

    python -m pipelines.prediction.samples tests/data/prediction

The Bundle uses the codes and units a lab would send (eGFR CKD-EPI 2021 98979-8, creatinine
2160-0, HbA1c 4548-4, systolic BP inside a blood-pressure panel 85354-9, UACR 9318-7) plus a
Patient and an unused haemoglobin result, so readers see what gets skipped. The CSV reports
creatinine in µmol/L (14682-9) to exercise unit conversion.
"""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fhir.resources.bundle import Bundle

from pipelines.prediction.codes import FEATURE_NAMES
from pipelines.prediction.cohort import generate_cohort
from pipelines.prediction.features import PatientSeries

__all__ = ["INDEX_DATE", "bundle_for", "csv_for", "main"]

INDEX_DATE = datetime(2025, 6, 30, 9, 0, tzinfo=UTC)
_LOINC = "http://loinc.org"
_UCUM = "http://unitsofmeasure.org"
# feature -> (LOINC, display, UCUM unit, category)
_CODES = {
    "egfr": ("98979-8", ("Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma or "
                         "Blood by Creatinine-based formula (CKD-EPI 2021)"), "mL/min/{1.73_m2}", "laboratory"),
    "creatinine": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory"),
    "hba1c": ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "laboratory"),
    "sbp": ("8480-6", "Systolic blood pressure", "mm[Hg]", "vital-signs"),
    "uacr": ("9318-7", "Albumin/Creatinine [Mass Ratio] in Urine", "mg/g", "laboratory"),
}  # fmt: skip


def _when(t_years: float) -> str:
    moment = INDEX_DATE + timedelta(days=float(t_years) * 365.25)
    return moment.replace(second=0, microsecond=0).isoformat()


def _concept(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": _LOINC, "code": code, "display": display}], "text": display}


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": _UCUM, "code": unit}


def _observation(obs_id: str, subject: str, when: str, category: str, **content: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": category}]}],
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        **content,
    }  # fmt: skip


def bundle_for(series: PatientSeries, patient_id: str, seed: int = 0) -> dict[str, Any]:
    """A validated FHIR R5 collection Bundle holding the patient's observations."""
    rng = np.random.default_rng(seed)
    subject = f"Patient/{patient_id}"
    resources: list[dict[str, Any]] = [{"resourceType": "Patient", "id": patient_id}]
    for n, (t, f, v) in enumerate(zip(series.times, series.features, series.values, strict=True), start=1):
        name = FEATURE_NAMES[f]
        code, display, unit, category = _CODES[name]
        obs_id = f"{patient_id}-obs{n}"
        if name == "sbp":  # as a blood-pressure panel with systolic and diastolic components
            diastolic = float(round(v * 0.6 + rng.normal(0, 5)))
            resources.append(_observation(obs_id, subject, _when(t), category,
                code=_concept("85354-9", "Blood pressure panel with all children optional"),
                component=[{"code": _concept(code, display), "valueQuantity": _quantity(float(v), unit)},
                           {"code": _concept("8462-4", "Diastolic blood pressure"),
                            "valueQuantity": _quantity(diastolic, unit)}]))  # fmt: skip
        else:
            resources.append(_observation(obs_id, subject, _when(t), category,
                code=_concept(code, display), valueQuantity=_quantity(float(v), unit)))  # fmt: skip
    haemoglobin = _concept("718-7", "Hemoglobin [Mass/volume] in Blood")  # not a model input
    resources.append(_observation(f"{patient_id}-hb", subject, _when(series.times[-1]), "laboratory",
                                  code=haemoglobin, valueQuantity=_quantity(12.9, "g/dL")))
    raw = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.UUID(bytes=rng.bytes(16), version=4)}", "resource": r} for r in resources
        ],
    }
    return Bundle.model_validate(raw).model_dump(mode="json", exclude_none=True)


def csv_for(series: PatientSeries) -> str:
    """``timestamp,code,value,unit`` rows; creatinine converted to µmol/L (LOINC 14682-9)."""
    lines = ["timestamp,code,value,unit"]
    for t, f, v in zip(series.times, series.features, series.values, strict=True):
        name = FEATURE_NAMES[f]
        code, _, unit, _ = _CODES[name]
        if name == "creatinine":
            code, unit, v = "14682-9", "umol/L", round(v * 88.42)
        lines.append(f"{_when(t)},{code},{v:g},{unit}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write patient_bundle.json and patient.csv into")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    cohort = generate_cohort(40, args.seed)
    progressor = int(np.flatnonzero(cohort.labels == 1)[0])
    stable = int(np.flatnonzero(cohort.labels == 0)[0])
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = bundle_for(cohort.patients[progressor], "synthetic-ckd-1", seed=args.seed)
    (args.out / "patient_bundle.json").write_text(json.dumps(bundle, indent=1) + "\n")
    (args.out / "patient.csv").write_text(csv_for(cohort.patients[stable]))
    print(f"wrote {args.out}/patient_bundle.json (progressor) and {args.out}/patient.csv (non-progressor)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
