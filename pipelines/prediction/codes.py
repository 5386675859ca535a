"""The five inputs the CKD-progression model reads, their LOINC codes, units and scaling.

Each feature accepts the LOINC codes labs commonly send for it and converts the units they
come in to one canonical unit (UCUM). A unit we cannot convert is an error, not a guess: a
creatinine in µmol/L read as mg/dL would be off by a factor of 88.

A value sent without a unit takes the unit its LOINC code implies. Every code accepted here
has a LOINC *property* that fixes the dimension (14682-9 is Creatinine [Moles/volume], SCnc,
so µmol/L; 2160-0 is Creatinine [Mass/volume], MCnc, so mg/dL), and the unit implied is
LOINC's example UCUM unit for that code. A code is accepted only with its implied unit
(``Feature.loinc``), so no value is ever read in a unit nobody stated or implied.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BP_PANEL_LOINC", "FEATURES", "FEATURE_NAMES", "LOINC_SYSTEM", "Feature", "UnitError", "by_loinc"]

LOINC_SYSTEM = "http://loinc.org"
BP_PANEL_LOINC = "85354-9"  # Blood pressure panel: systolic arrives as a component (8480-6)


class UnitError(ValueError):
    """A value arrived in a unit the feature cannot convert."""


@dataclass(frozen=True)
class Feature:
    """One model input: display name, accepted LOINC codes with the UCUM unit each implies,
    canonical UCUM unit, unit converters to it, the fixed transform to the model's scale
    (centre/scale after an optional log) and the physiologically plausible range (canonical
    unit) outside which a value is dropped."""

    name: str
    display: str
    loinc: dict[str, str]
    unit: str
    converters: dict[str, Callable[[float], float]] = field(default_factory=dict)
    log: bool = False
    centre: float = 0.0
    scale: float = 1.0
    plausible: tuple[float, float] = (0.0, math.inf)

    def __post_init__(self) -> None:
        for code, implied in self.loinc.items():
            if _key(implied) not in self.converters:
                raise ValueError(f"{self.display}: LOINC {code} implies {implied!r}, which has no converter")

    def to_canonical(self, value: float, unit: str) -> float:
        """Convert ``value`` in ``unit`` to the canonical unit."""
        key = _key(unit)
        if key not in self.converters:
            raise UnitError(f"unit {unit!r} not understood for {self.display} (expected {self.unit})")
        return self.converters[key](value)


def _same(value: float) -> float:
    return value


def _key(unit: str) -> str:
    return unit.strip().replace(" ", "").lower()


def _keys(*units: str) -> list[str]:
    return [_key(u) for u in units]


FEATURES: tuple[Feature, ...] = (
    Feature(
        "egfr",
        "eGFR",
        # CKD-EPI 2009, CKD-EPI 2021, MDRD; all [Volume Rate/Area] (VRat/Area)
        dict.fromkeys(("62238-1", "98979-8", "33914-3"), "mL/min/{1.73_m2}"),
        "mL/min/{1.73_m2}",
        {k: _same for k in _keys("mL/min/{1.73_m2}", "mL/min/1.73m2", "mL/min/1.73_m2", "mL/min")},
        centre=60.0,
        scale=20.0,
        plausible=(1.0, 200.0),
    ),
    Feature(
        "creatinine",
        "Creatinine (serum)",
        {"2160-0": "mg/dL", "14682-9": "umol/L"},  # [Mass/volume] (MCnc), [Moles/volume] (SCnc)
        "mg/dL",
        {**{k: _same for k in _keys("mg/dL")}, **{k: (lambda v: v / 88.42) for k in _keys("umol/L", "µmol/L")}},
        log=True,
        centre=math.log(1.3),
        scale=0.5,
        plausible=(0.1, 30.0),
    ),
    Feature(
        "hba1c",
        "HbA1c",
        dict.fromkeys(("4548-4", "17856-6"), "%"),  # Hemoglobin A1c/Hemoglobin.total, MFr (NGSP %)
        "%",
        {**{k: _same for k in _keys("%")}, **{k: (lambda v: 0.0915 * v + 2.15) for k in _keys("mmol/mol")}},
        centre=6.5,
        scale=1.5,
        plausible=(3.0, 20.0),
    ),
    Feature(
        "sbp",
        "Systolic blood pressure",
        {"8480-6": "mm[Hg]"},  # Pres
        "mm[Hg]",
        {k: _same for k in _keys("mm[Hg]", "mmHg")},
        centre=135.0,
        scale=18.0,
        plausible=(50.0, 300.0),
    ),
    Feature(
        "uacr",
        "Urine albumin/creatinine ratio",
        dict.fromkeys(("9318-7", "14959-1"), "mg/g"),  # [Mass Ratio] (MRto)
        "mg/g",
        {**{k: _same for k in _keys("mg/g", "mg/g{creat}")}, **{k: (lambda v: v * 8.84) for k in _keys("mg/mmol")}},
        log=True,
        centre=math.log(30.0),
        scale=1.5,
        plausible=(0.1, 30000.0),
    ),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
_BY_LOINC = {code: i for i, feature in enumerate(FEATURES) for code in feature.loinc}


def by_loinc(code: str) -> int | None:
    """Index into :data:`FEATURES` of the feature a LOINC code feeds, or None."""
    return _BY_LOINC.get(code.strip())
