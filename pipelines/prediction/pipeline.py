"""The ``prediction`` sidecar: 12-month risk of chronic-kidney-disease progression from one
patient's eGFR, creatinine, HbA1c, systolic BP and UACR history (FHIR Bundle or CSV).

Output: ``data`` (status, risk, horizon, outcome definition, inputs used, missingness, what was
ignored and why, a warning naming each input value not used, model identity), SR report items
(risk as NUM in percent) and a FHIR R5 ``RiskAssessment`` whose ``basis`` cites the
Observations used.

When what is left after dropping unusable values is not enough to predict (no eGFR or
creatinine up to the index date), the result is *not assessable*: ``risk`` is None, the
reason is given, the SR risk item is a TEXT saying so and the RiskAssessment carries no
probability — never a number computed from too little.

The model is trained on synthetic patients only (see ``model/MODEL_CARD.md``): research and
integration testing, not clinical use.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from fhir.resources.riskassessment import RiskAssessment

from pipelines.base import (
    Code,
    PipelineError,
    ReportItem,
    SidecarPipeline,
    SidecarResult,
)
from pipelines.prediction.codes import FEATURES
from pipelines.prediction.cohort import HORIZON_MONTHS, OUTCOME
from pipelines.prediction.inputs import Observed, ParsedInput, insufficient, read_observations, select, to_series
from pipelines.prediction.model import DEFAULT_MODEL_PATH, RiskModel
from pipelines.registry import register

__all__ = ["CODE_SCHEME", "FHIR_CODE_SYSTEM", "CkdProgressionPipeline"]

log = logging.getLogger(__name__)

CODE_SCHEME = "99DCMNODE"  # private coding scheme designator (DICOM PS3.16 §8: "99" prefix)
FHIR_CODE_SYSTEM = "urn:dicom-node:codes"
_TITLE = Code("CKD-RISK-RPT", CODE_SCHEME, "CKD progression risk report")
_RISK = Code("CKD-RISK-12M", CODE_SCHEME, "Risk of CKD progression within 12 months")
_OUTCOME = Code("CKD-PROGRESSION", CODE_SCHEME, "CKD progression (KDIGO 2012)")
_HORIZON = Code("RISK-HORIZON", CODE_SCHEME, "Prediction horizon")
_N_USED = Code("OBS-USED", CODE_SCHEME, "Observations used")
_DEFINITION = Code("OUTCOME-DEF", CODE_SCHEME, "Outcome definition")
_CAUTION = Code("USE-LIMITS", CODE_SCHEME, "Limits of use")
_DROPPED = Code("INPUT-DROPPED", CODE_SCHEME, "Input value not used")
_PERCENT = Code("%", "UCUM", "percent")
_MONTHS = Code("mo", "UCUM", "month")
_NO_UNITS = Code("1", "UCUM", "no units")
_CAUTION_TEXT = "Model trained on synthetic patients only; research use, not for clinical use."
_MAX_BASIS = 200
_MAX_WARNINGS_REPORTED = 20  # in the SR and the RiskAssessment; the JSON data lists them all


@register
class CkdProgressionPipeline(SidecarPipeline):
    """GRU-D risk of CKD progression within 12 months from irregular, partial lab series."""

    name: ClassVar[str] = "prediction"
    default_model = DEFAULT_MODEL_PATH
    version: ClassVar[str] = "1.0.0"
    description: ClassVar[str] = (
        "12-month CKD progression risk (KDIGO 2012) from eGFR, creatinine, HbA1c, systolic BP and UACR "
        "series by a GRU-D recurrent model trained on synthetic patients. Research use only."
    )

    def __init__(self, model_path: Path | None = None) -> None:
        self.model_path = Path(model_path) if model_path else DEFAULT_MODEL_PATH
        self._model: RiskModel | None = None

    @property
    def model(self) -> RiskModel:
        if self._model is None:
            try:
                self._model = RiskModel.load(self.model_path)
            except (OSError, KeyError, RuntimeError) as exc:
                raise PipelineError(f"cannot load risk model {self.model_path.name}: {exc}") from exc
        return self._model

    def run(
        self, input_path: Path, patient_id: str | None = None, index_date: str | None = None, **params: Any
    ) -> SidecarResult:
        """Score one patient; ``index_date`` (ISO 8601) predicts as of that date instead of the
        last observation, ignoring anything later."""
        if params:
            raise PipelineError(f"unknown parameters for prediction pipeline: {', '.join(sorted(params))}")
        parsed = read_observations(Path(input_path), patient_id)
        index, kept = select(parsed, _parse_index(index_date))
        subject = f"Patient/{patient_id}" if patient_id else parsed.subject
        reason = insufficient(kept)
        risk = None
        if reason is None and index is not None:  # observations were kept, so there is an index
            risk = float(self.model.predict([to_series(kept, index)])[0])
            log.info("prediction scored %d observations (format %s)", len(kept), parsed.format)
        else:
            log.info("prediction not assessable: %s", reason)
        if parsed.warnings:
            log.info("prediction: %d input values not used (named in the result's warnings)", len(parsed.warnings))
        return self._result(risk, reason, index, kept, parsed, Path(input_path), subject)

    def _result(
        self,
        risk: float | None,
        reason: str | None,
        index: datetime | None,
        kept: list[Observed],
        parsed: ParsedInput,
        input_path: Path,
        subject: str | None,
    ) -> SidecarResult:
        """The result of a risk (``reason`` None) or of a patient not assessable for ``reason``."""
        card = self.model.metadata.get("metrics", {}).get("test", {})
        data = {
            "status": "assessed" if risk is not None else "not assessable",
            "risk": round(risk, 4) if risk is not None else None,
            **({"not_assessable_reason": reason} if reason else {}),
            "horizon_months": HORIZON_MONTHS,
            "outcome": OUTCOME,
            "index_date": index.isoformat() if index else None,
            "input": {
                "file": input_path.name,
                "format": parsed.format,
                "observations_used": len(kept),
                "ignored": dict(sorted(parsed.ignored.items())),
                "units_inferred": dict(sorted(parsed.units_inferred.items())),
            },
            "warnings": parsed.warnings,
            "inputs_used": _inputs_used(kept),
            "missingness": _missingness(kept, index) if kept and index else None,
            "model": {
                "file": self.model_path.name,
                "sha256": self.model.checksum,
                "held_out_metrics": {k: card.get(k) for k in ("auc", "brier", "n")},
            },
        }
        if risk is not None:
            risk_item = ReportItem(_RISK, value=round(100 * risk, 1), unit=_PERCENT)
        else:
            risk_item = ReportItem(_RISK, text=f"Not assessable: {reason}")
        return SidecarResult(
            pipeline=self.name,
            version=self.version,
            summary=_summary(risk, reason, kept, index, len(parsed.warnings)),
            data=data,
            report_title=_TITLE,
            report_items=[
                risk_item,
                ReportItem(_HORIZON, value=float(HORIZON_MONTHS), unit=_MONTHS),
                ReportItem(_N_USED, value=float(len(kept)), unit=_NO_UNITS),
                ReportItem(_DEFINITION, text=OUTCOME),
                ReportItem(_CAUTION, text=_CAUTION_TEXT),
                *(ReportItem(_DROPPED, text=w) for w in _reported(parsed.warnings)),
            ],
            fhir=[self._risk_assessment(risk, reason, index, kept, subject, parsed.warnings)],
        )

    def _risk_assessment(
        self,
        risk: float | None,
        reason: str | None,
        index: datetime | None,
        kept: list[Observed],
        subject: str | None,
        warnings: list[str],
    ) -> dict[str, Any]:
        basis = list(dict.fromkeys(o.reference for o in kept if o.reference))[-_MAX_BASIS:]
        prediction: dict[str, Any] = {"outcome": {**_concept(_OUTCOME), "text": OUTCOME}}
        if risk is not None and index is not None:
            prediction["probabilityDecimal"] = round(risk, 4)
            prediction["rationale"] = f"{len(kept)} observations up to {index.date().isoformat()}"
        else:
            prediction["rationale"] = f"Not assessable: {reason}"
        if index is not None:
            prediction["whenPeriod"] = {
                "start": index.isoformat(), "end": _add_months(index, HORIZON_MONTHS).isoformat()
            }  # fmt: skip
        resource: dict[str, Any] = {
            "resourceType": "RiskAssessment",
            "status": "final",
            "subject": {"reference": subject} if subject else {"display": "patient not identified in the input"},
            "occurrenceDateTime": datetime.now(UTC).isoformat(timespec="seconds"),
            "code": _concept(_RISK),
            "method": {"text": f"{self.description} Model sha256 {self.model.checksum}."},
            "performer": {"display": f"dicom-node {self.name} pipeline {self.version}"},
            "prediction": [prediction],
            "note": [{"text": _CAUTION_TEXT}] + [{"text": f"Input value not used: {w}"} for w in _reported(warnings)],
        }
        if basis:
            resource["basis"] = [{"reference": ref} for ref in basis]
        return RiskAssessment.model_validate(resource).model_dump(mode="json", exclude_none=True)


def _parse_index(index_date: str | None) -> datetime | None:
    if index_date is None:
        return None
    try:
        value = datetime.fromisoformat(index_date)
    except ValueError as exc:
        raise PipelineError(f"index_date: {exc}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole months, the day clamped to the target month (31 Jan + 1 → 28/29 Feb)."""
    year, month = divmod(moment.month - 1 + months, 12)
    year, month = moment.year + year, month + 1
    for day in range(moment.day, 27, -1):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    return moment.replace(year=year, month=month, day=28)


def _inputs_used(kept: list[Observed]) -> dict[str, Any]:
    used: dict[str, Any] = {}
    for i, feature in enumerate(FEATURES):
        mine = sorted((o for o in kept if o.feature == i), key=lambda o: o.time)
        if mine:
            used[feature.name] = {
                "display": feature.display,
                "unit": feature.unit,
                "count": len(mine),
                "first": mine[0].time.isoformat(),
                "last": mine[-1].time.isoformat(),
                "last_value": round(mine[-1].value, 3),
            }
    return used


def _missingness(kept: list[Observed], index: datetime) -> dict[str, Any]:
    """Per feature: at how many of the patient's visits (distinct times) it was measured and
    how long before the index date it was last seen."""
    visits = sorted({o.time for o in kept})
    counts = Counter(o.feature for o in {(o.time, o.feature): o for o in kept}.values())
    features = {}
    for i, feature in enumerate(FEATURES):
        times = [o.time for o in kept if o.feature == i]
        features[feature.name] = {
            "observed_visits": counts.get(i, 0),
            "missing_fraction": round(1 - counts.get(i, 0) / len(visits), 3),
            "days_since_last": round((index - max(times)).total_seconds() / 86400, 1) if times else None,
        }
    return {
        "visits": len(visits),
        "span_days": round((visits[-1] - visits[0]).total_seconds() / 86400, 1),
        "features": features,
    }


def _summary(
    risk: float | None, reason: str | None, kept: list[Observed], index: datetime | None, dropped: int
) -> str:
    suffix = f"; {dropped} input value{'s' if dropped != 1 else ''} not used (see warnings)" if dropped else ""
    if risk is None or index is None:
        return f"12-month CKD progression risk not assessable: {reason}{suffix}"
    egfr = [o for o in kept if FEATURES[o.feature].name == "egfr"]
    last = f"; last eGFR {max(egfr, key=lambda o: o.time).value:.0f}" if egfr else ""
    visits = len({o.time for o in kept})
    return (
        f"12-month CKD progression risk {100 * risk:.1f}% as of {index.date().isoformat()} ({visits} visits{last})"
        + suffix
    )


def _reported(warnings: list[str]) -> list[str]:
    """The warnings an SR or RiskAssessment lists: the first few, then how many more."""
    if len(warnings) <= _MAX_WARNINGS_REPORTED:
        return warnings
    more = len(warnings) - _MAX_WARNINGS_REPORTED + 1
    return [*warnings[: _MAX_WARNINGS_REPORTED - 1], f"{more} more; the JSON result lists every one"]


def _concept(code: Code) -> dict[str, Any]:
    return {"coding": [{"system": FHIR_CODE_SYSTEM, "code": code.value, "display": code.meaning}], "text": code.meaning}

