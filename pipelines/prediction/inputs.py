"""Read one patient's observations from a FHIR Bundle (JSON) or a CSV of
``timestamp,code,value[,unit]``, keep those the model reads, and say what was left out and why.

FHIR: the Bundle is validated with ``fhir.resources`` as R5 and, failing that, R4B (most EHRs
still speak R4). Observations are read from ``code`` and from ``component`` (systolic BP arrives
inside a blood-pressure panel). Statuses other than final/amended/corrected/preliminary and
codes the model does not use are skipped and counted. A model input that cannot be used — no
numeric value, no precise time, a value outside the feature's plausible range (a negative
eGFR) — is dropped, counted *and* named in ``ParsedInput.warnings``, so the result says which
values it did not use. A value without a unit takes the unit its LOINC code implies (see
:mod:`~pipelines.prediction.codes`; counted in ``units_inferred``); a unit that cannot be
converted is an error (:class:`~pipelines.base.PipelineError`).

Whether what is left suffices to predict is decided by :func:`insufficient`, which gives the
reason a patient is not assessable.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fhir.resources.bundle import Bundle
from fhir.resources.R4B.bundle import Bundle as BundleR4B
from pydantic import ValidationError

from pipelines.base import PipelineError
from pipelines.prediction.codes import FEATURES, LOINC_SYSTEM, UnitError, by_loinc
from pipelines.prediction.features import PatientSeries

__all__ = ["Observed", "ParsedInput", "insufficient", "read_observations", "select", "to_series"]

_USABLE_STATUS = {"final", "amended", "corrected", "preliminary"}
_UCUM = "http://unitsofmeasure.org"
_YEAR = timedelta(days=365.25)
_KIDNEY = ("egfr", "creatinine")


@dataclass(frozen=True)
class Observed:
    """One usable observation, value in the feature's canonical unit."""

    time: datetime
    feature: int
    value: float
    reference: str | None = None  # "Observation/<id>" or the entry's fullUrl, for RiskAssessment.basis


@dataclass
class ParsedInput:
    """The usable observations, counts of what was skipped by reason, and one warning naming
    each model input that was dropped."""

    observations: list[Observed]
    ignored: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    units_inferred: Counter[str] = field(default_factory=Counter)
    subject: str | None = None
    format: str = ""

    def drop(self, reason: str, warning: str) -> None:
        """Count a dropped model input under ``reason`` and name it in the warnings."""
        self.ignored[reason] += 1
        self.warnings.append(warning)


def read_observations(path: Path, patient_id: str | None = None) -> ParsedInput:
    """Parse ``path`` (.json FHIR Bundle or .csv); ``patient_id`` selects one patient of a Bundle."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"input file not found: {path.name}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"cannot read {path.name}: {exc}") from exc
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        return _read_bundle(text, path.name, patient_id)
    if path.suffix.lower() == ".csv":
        return _read_csv(text, path.name)
    raise PipelineError(f"unsupported input {path.name}: use a FHIR Bundle (.json) or a CSV (.csv)")


def _validate_bundle(raw: dict[str, Any], name: str) -> Any:
    try:
        return Bundle.model_validate(raw)
    except ValidationError as r5_error:
        try:
            return BundleR4B.model_validate(raw)
        except ValidationError:
            first = r5_error.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise PipelineError(f"{name} is not a valid FHIR Bundle: {where}: {first.get('msg')}") from None


def _read_bundle(text: str, name: str, patient_id: str | None) -> ParsedInput:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{name} is not JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("resourceType") != "Bundle":
        kind = raw.get("resourceType") if isinstance(raw, dict) else type(raw).__name__
        raise PipelineError(f"{name} is not a FHIR Bundle (found {kind!r})")
    bundle = _validate_bundle(raw, name)
    parsed = ParsedInput([], format="fhir-bundle")
    subjects: set[str] = set()
    for entry in bundle.entry or []:
        resource = entry.resource
        if resource is None or resource.get_resource_type() != "Observation":
            parsed.ignored["not an Observation"] += 1
            continue
        subject = resource.subject.reference if resource.subject and resource.subject.reference else None
        if patient_id is not None and not _same_patient(subject, patient_id):
            parsed.ignored["other patient"] += 1
            continue
        reference = f"Observation/{resource.id}" if resource.id else entry.fullUrl
        found = _from_observation(resource, reference, parsed)
        if found and subject:
            subjects.add(subject)
        parsed.observations.extend(found)
    if len(subjects) > 1:
        raise PipelineError(f"{name} holds observations of {len(subjects)} patients: give patient_id")
    parsed.subject = next(iter(subjects), None)
    return parsed


def _same_patient(reference: str | None, patient_id: str) -> bool:
    return reference is not None and (reference == patient_id or reference.endswith(f"Patient/{patient_id}"))


def _from_observation(obs: Any, reference: str | None, parsed: ParsedInput) -> list[Observed]:
    if obs.status not in _USABLE_STATUS:
        parsed.ignored[f"status {obs.status}"] += 1
        return []
    # (coded concept, quantity) pairs: the observation itself, then its components
    pairs = [(obs.code, obs.valueQuantity)] + [(c.code, c.valueQuantity) for c in obs.component or []]
    inputs = []  # (LOINC code, feature, quantity) of the model's inputs among them
    for concept, quantity in pairs:
        loinc = [c.code for c in concept.coding or [] if c.system == LOINC_SYSTEM and c.code]
        found = next(((code, f) for code in loinc if (f := by_loinc(code)) is not None), None)
        if found is not None:
            inputs.append((*found, quantity))
        elif concept is obs.code and not obs.component:
            parsed.ignored[f"code not used: {', '.join(loinc) or concept.text or 'uncoded'}"] += 1
    when = _effective_time(obs)
    observed = []
    for code, feature, quantity in inputs:
        what = f"{FEATURES[feature].display} (LOINC {code}, {reference or 'Observation without id'})"
        if when is None:
            parsed.drop("no precise effective time", f"{what}: no precise effective time; not used")
        elif quantity is None or quantity.value is None:
            parsed.drop("no numeric value", f"{what}: no numeric value; not used")
        else:
            # a coded unit of another system than UCUM is not guessed at: its code stands as an unknown unit
            ucum = quantity.code and quantity.system in (None, _UCUM)
            unit = quantity.code if ucum else (quantity.unit or quantity.code)
            kept = _checked(feature, code, float(quantity.value), unit, when, what, parsed, reference)
            if kept is not None:
                observed.append(kept)
    return observed


def _effective_time(obs: Any) -> datetime | None:
    value = obs.effectiveDateTime or obs.effectiveInstant
    if value is None and obs.effectivePeriod is not None:
        value = obs.effectivePeriod.start
    return _as_datetime(value)


def _as_datetime(value: Any) -> datetime | None:
    """datetime (UTC if naive) for a datetime or full date; None for partial dates ("2024-03")."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _checked(
    feature: int,
    code: str,
    value: float,
    unit: str | None,
    when: datetime,
    what: str,
    parsed: ParsedInput,
    reference: str | None = None,
) -> Observed | None:
    """The observation in the feature's canonical unit, or None (dropped and named) when the
    value is outside the plausible range."""
    spec = FEATURES[feature]
    if unit is None or not unit.strip():
        unit = spec.loinc[code]
        parsed.units_inferred[f"{code} as {unit}"] += 1
    try:
        canonical = spec.to_canonical(value, unit)
    except UnitError as exc:
        raise PipelineError(f"{what}: {exc}") from None
    low, high = spec.plausible
    if not (low <= canonical <= high):
        shown = f"{value:g} {unit}" + (f" (= {canonical:.3g} {spec.unit})" if canonical != value else "")
        parsed.drop(
            f"implausible {spec.name} value",
            f"{what} at {when.isoformat()}: {shown} is outside the plausible range {low:g} to {high:g} {spec.unit}; "
            "not used",
        )
        return None
    return Observed(when, feature, canonical, reference)


def _read_csv(text: str, name: str) -> ParsedInput:
    reader = csv.DictReader(text.splitlines())
    columns = {c.strip().lower(): c for c in reader.fieldnames or []}
    missing = [c for c in ("timestamp", "code", "value") if c not in columns]
    if missing:
        raise PipelineError(f"{name}: missing column(s) {', '.join(missing)}; expected timestamp,code,value[,unit]")
    parsed = ParsedInput([], format="csv")
    for line_no, row in enumerate(reader, start=2):
        code = (row.get(columns["code"]) or "").strip().removeprefix("LOINC:").removeprefix(f"{LOINC_SYSTEM}|").strip()
        feature = by_loinc(code)
        if feature is None:
            parsed.ignored[f"code not used: {code or 'empty'}"] += 1
            continue
        try:
            when = _as_datetime(datetime.fromisoformat((row.get(columns["timestamp"]) or "").strip()))
            value = float((row.get(columns["value"]) or "").strip())
        except ValueError as exc:
            raise PipelineError(f"{name} line {line_no}: {exc}") from None
        if when is None or not np.isfinite(value):
            raise PipelineError(f"{name} line {line_no}: timestamp and a finite value are required")
        unit = (row.get(columns["unit"]) or "").strip() if "unit" in columns else ""
        what = f"{FEATURES[feature].display} (LOINC {code}, {name} line {line_no})"
        observed = _checked(feature, code, value, unit or None, when, what, parsed)
        if observed is not None:
            parsed.observations.append(observed)
    return parsed


def select(parsed: ParsedInput, index: datetime | None = None) -> tuple[datetime | None, list[Observed]]:
    """The index date (given, or the last observation's; None when there is neither) and the
    observations up to it. Later observations are counted as ignored."""
    if index is None and parsed.observations:
        index = max(o.time for o in parsed.observations)
    kept = [o for o in parsed.observations if index is not None and o.time <= index]
    if len(kept) < len(parsed.observations):
        parsed.ignored["after the index date"] += len(parsed.observations) - len(kept)
    return index, kept


def insufficient(kept: list[Observed]) -> str | None:
    """Why ``kept`` is not enough to predict from, or None when it is: the model needs kidney
    function (an eGFR or a serum creatinine) at least once."""
    if not kept:
        return "no usable eGFR, creatinine, HbA1c, systolic BP or UACR observation up to the index date"
    if not any(FEATURES[o.feature].name in _KIDNEY for o in kept):
        return "no usable eGFR or serum creatinine observation up to the index date: kidney function is required"
    return None


def to_series(kept: list[Observed], index: datetime) -> PatientSeries:
    """The model's view of ``kept``: times in years relative to ``index``."""
    return PatientSeries(
        times=np.array([(o.time - index) / _YEAR for o in kept]),
        features=np.array([o.feature for o in kept]),
        values=np.array([o.value for o in kept]),
    )
