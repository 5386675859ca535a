"""The ``drug`` sidecar: screen a compound library and report a ranked candidate list.

Output: ``data`` (counts, top rows, ranked CSV path, timings, model identity and what its
activity prediction is of), SR report items (counts as NUM, the activity model and top
candidates as TEXT) and one FHIR R5 ``Observation`` summarising the screen.

A predicted pIC50 is a number *for something*: every output names it — the CSV column
(``predicted_pic50_CHEMBL2321810``), ``data["activity_model"]``, an SR item and a FHIR
component — from the model file (``DrugModel.activity``). A molecule outside the model's
applicability domain gets ``in_domain`` false and no pIC50, and ranks after the in-domain
molecules of its tier (see :mod:`pipelines.drug.screen`).

Why an Observation: FHIR has no resource for an in-silico screen; an Observation with a
project-coded ``code``, one ``component`` per count and per top candidate, the model in
``device`` and a "not for clinical use" ``note`` is the smallest faithful record, and it can
stand without a patient (``subject`` only when one is given).
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from fhir.resources.observation import Observation

from pipelines.base import (
    Code,
    PipelineError,
    ReportItem,
    SidecarPipeline,
    SidecarResult,
)
from pipelines.drug.datasets import DEFAULT_REFERENCE_PATH, ActivityEndpoint, load_reference
from pipelines.drug.featurise import Candidate
from pipelines.drug.library import read_library
from pipelines.drug.model import DEFAULT_MODEL_PATH, DrugModel
from pipelines.drug.screen import Screener, ScreenOutcome, write_csv
from pipelines.registry import register

__all__ = ["CODE_SCHEME", "FHIR_CODE_SYSTEM", "DrugScreeningPipeline"]

log = logging.getLogger(__name__)

CODE_SCHEME = "99DCMNODE"  # private coding scheme designator (DICOM PS3.16 §8: "99" prefix)
FHIR_CODE_SYSTEM = "urn:dicom-node:codes"
_NO_UNITS = Code("1", "UCUM", "no units")
_REPORT_CANDIDATES = 10
_COUNT_CODES = {
    "total": Code("DRUG-TOTAL", CODE_SCHEME, "Molecules screened"),
    "pass": Code("DRUG-PASS", CODE_SCHEME, "Molecules passing all filters"),
    "pass with alerts": Code("DRUG-ALERTS", CODE_SCHEME, "Molecules passing with Brenk alerts"),
    "fail": Code("DRUG-FAIL", CODE_SCHEME, "Molecules failing Lipinski, Veber or PAINS"),
    "invalid": Code("DRUG-INVALID", CODE_SCHEME, "Molecules not parseable"),
    "in_domain": Code("DRUG-IN-DOMAIN", CODE_SCHEME, "Molecules in the activity model's applicability domain"),
}
_TITLE = Code("DRUG-SCREEN", CODE_SCHEME, "In silico drug-candidate screening report")
_CANDIDATE = Code("DRUG-CANDIDATE", CODE_SCHEME, "Ranked drug candidate")
_ACTIVITY = Code("DRUG-ACTIVITY", CODE_SCHEME, "What the activity model predicts")


@register
class DrugScreeningPipeline(SidecarPipeline):
    """Rank a SMILES/CSV/SDF library by drug-likeness rules, structural alerts and the model."""

    name: ClassVar[str] = "drug"
    default_model = DEFAULT_MODEL_PATH
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = (
        "Standardise a compound library, apply Lipinski/Veber/PAINS/Brenk, score with a fingerprint "
        "autoencoder and activity regressor, rank. Research use only."
    )

    def __init__(self, model_path: Path | None = None) -> None:
        self.model_path = Path(model_path) if model_path else DEFAULT_MODEL_PATH
        self._model: DrugModel | None = None

    @property
    def model(self) -> DrugModel:
        if self._model is None:
            try:
                self._model = DrugModel.load(self.model_path)
            except (OSError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError) as exc:
                raise PipelineError(f"cannot load drug model {self.model_path.name}: {exc}") from exc
        return self._model

    def run(
        self,
        input_path: Path,
        patient_id: str | None = None,
        top: int = 50,
        output_dir: Path | None = None,
        tautomer: bool = False,
        reference: Path | None = None,
        workers: int | None = None,
        **params: Any,
    ) -> SidecarResult:
        """Screen ``input_path``; write ``ranked.csv`` under ``output_dir`` when given.

        ``tautomer=True`` adds canonical-tautomer standardisation (off by default: it roughly
        halves throughput, and the shipped model was trained without it);
        ``reference`` replaces the shipped reference-drug set (a name,smiles CSV); ``workers``
        is the number of processes for libraries over one chunk (default: 2, or 1 on one CPU).
        """
        if params:
            raise PipelineError(f"unknown parameters for drug pipeline: {', '.join(sorted(params))}")
        if top < 0:
            raise PipelineError("top must be ≥ 0")
        input_path = Path(input_path)
        reference_set = load_reference(reference or DEFAULT_REFERENCE_PATH)
        if workers is None:
            workers = min(2, len(os.sched_getaffinity(0)))
        screener = Screener(self.model, reference_set, tautomer=tautomer, workers=workers)
        outcome = screener.run(read_library(input_path))
        if not outcome.candidates:
            raise PipelineError(f"no molecules in {input_path.name}")
        log.info("drug screen done: %s", outcome.counts)
        csv_path = None
        if output_dir is not None:
            csv_path = Path(output_dir) / "ranked.csv"
            write_csv(outcome.candidates, csv_path, self.model.activity)
        top_rows = [c.as_dict() for c in outcome.candidates[:top]]  # plain str/float/bool/list: JSON-able
        data = {
            "input": input_path.name,
            "counts": outcome.counts,
            "top": top_rows,
            "ranked_csv": str(csv_path) if csv_path else None,
            "timings": outcome.timings,
            "parameters": {
                "top": top,
                "tautomer": tautomer,
                "workers": screener.workers,
                "reference": Path(reference).name if reference else None,
            },
            "reference_set": screener.reference_names,
            "activity_model": {
                **asdict(self.model.activity),
                "csv_column": self.model.activity.column,
                "applicability_domain": {
                    "measure": "max Tanimoto (Morgan fingerprint) to a training molecule",
                    "threshold": round(self.model.domain_threshold, 4),
                    "outside": f"no {self.model.activity.endpoint}; ranked after in-domain molecules of its tier",
                },
            },
            "model": {
                "file": self.model_path.name,
                "sha256": self.model.checksum,
                "held_out_metrics": self.model.metadata.get("metrics", {}),
            },
        }
        return SidecarResult(
            pipeline=self.name,
            version=self.version,
            summary=_summary(outcome),
            data=data,
            report_title=_TITLE,
            report_items=self._report_items(outcome),
            fhir=[self._observation(outcome, patient_id)],
        )

    def _domain_text(self) -> str:
        return (
            f"max Tanimoto >= {self.model.domain_threshold:.2f} to a training molecule; outside it no "
            f"{self.model.activity.endpoint} is reported"
        )

    def _activity_text(self) -> str:
        return f"{self.model.activity.label}; applicability domain: {self._domain_text()}"

    def _report_items(self, outcome: ScreenOutcome) -> list[ReportItem]:
        activity = self.model.activity
        items = [ReportItem(_ACTIVITY, text=self._activity_text())]
        items += [ReportItem(code, value=float(outcome.counts[k]), unit=_NO_UNITS) for k, code in _COUNT_CODES.items()]
        items += [ReportItem(_CANDIDATE, text=_candidate_text(c, activity)) for c in _reportable(outcome.candidates)]
        return items

    def _observation(self, outcome: ScreenOutcome, patient_id: str | None) -> dict[str, Any]:
        components: list[dict[str, Any]] = [
            {"code": _fhir_code(code), "valueInteger": outcome.counts[key]} for key, code in _COUNT_CODES.items()
        ]
        components.append({"code": _fhir_code(_ACTIVITY), "valueString": self._activity_text()})
        activity = self.model.activity
        components += [
            {"code": {**_fhir_code(_CANDIDATE), "text": f"Rank {c.rank}"}, "valueString": _candidate_text(c, activity)}
            for c in _reportable(outcome.candidates)
        ]
        resource: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "code": _fhir_code(_TITLE),
            "effectiveDateTime": datetime.now(UTC).isoformat(timespec="seconds"),
            "valueString": _summary(outcome),
            "method": {"text": f"{self.description} Activity model: {self.model.activity.label}."},
            "device": {"display": f"dicom-node {self.name} {self.version}, model sha256 {self.model.checksum}"},
            "note": [{"text": "Research use only; not for clinical use. Scores are in silico estimates."}],
            "component": components,
        }
        if patient_id:
            resource["subject"] = {"reference": f"Patient/{patient_id}"}
        return Observation.model_validate(resource).model_dump(mode="json", exclude_none=True)


def _reportable(candidates: list[Candidate]) -> list[Candidate]:
    return [c for c in candidates[:_REPORT_CANDIDATES] if c.verdict != "invalid"]


def _candidate_text(c: Candidate, activity: ActivityEndpoint) -> str:
    if c.predicted_pic50 is not None:
        predicted = f"predicted {activity.endpoint} {c.predicted_pic50:.2f} (ChEMBL {activity.chembl_id})"
    else:
        predicted = f"outside the activity model's domain, no {activity.endpoint}"
    return f"#{c.rank} {c.id}: {c.verdict}, score {c.score:.3f}, {predicted}, {c.smiles}"


def _summary(outcome: ScreenOutcome) -> str:
    counts = outcome.counts
    text = (
        f"Screened {counts['total']} molecules: {counts['pass']} pass, {counts['pass with alerts']} pass with "
        f"alerts, {counts['fail']} fail, {counts['invalid']} invalid; {counts['in_domain']} in the activity "
        "model's domain"
    )
    best = outcome.candidates[0]
    if best.verdict != "invalid":
        text += f"; top {best.id} (score {best.score:.3f})"
    return text


def _fhir_code(code: Code) -> dict[str, Any]:
    return {"coding": [{"system": FHIR_CODE_SYSTEM, "code": code.value, "display": code.meaning}], "text": code.meaning}
