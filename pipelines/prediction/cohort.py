"""Synthetic chronic-kidney-disease cohort with a known progression label. No real data.

Dynamics, per patient, on a monthly grid (dt = 1/12 year):

* Baseline: age 45–85, sex, diabetes (40 %), eGFR ~ N(55, 18) clipped to 20–110 mL/min/1.73 m²,
  HbA1c (diabetic N(7.6, 1.1) %, else N(5.6, 0.35) %), systolic BP N(138, 16) mmHg, log UACR
  centred on 25 mg/g, higher with diabetes and blood pressure.
* Risk factors drift: HbA1c and systolic BP as mean-reverting (Ornstein–Uhlenbeck) walks
  around their baselines, log UACR as a random walk that climbs faster in rapid progressors.
* Latent kidney function drifts: ``d eGFR = slope dt + 1.2 dW`` with
  ``slope = −u · (1 + 1.2·(HbA1c − 6.5)⁺ + 0.07·(SBP − 130)⁺ + 1.8·(log UACR − log 30)⁺) · (3 if rapid)``
  per year, where ``u`` is a log-normal(0, 0.45) frailty and 20 % are hidden *rapid
  progressors* — visible only through their trajectory, which the recurrent model must read.
* Sampling is irregular: visits are a Poisson process (2–6 a year, ×1.5 below eGFR 45) over a
  1.5–4-year history; each visit measures a random subset (creatinine 85 %, eGFR reported with
  80 % of creatinines, HbA1c 75 % of diabetics / 25 % others, BP 70 %, UACR 30 %), so values
  are missing not at random by design.
* Measurement noise: creatinine ×exp(N(0, 0.07)) and eGFR computed from the *measured*
  creatinine with the CKD-EPI 2021 equation (Inker et al., NEJM 385 (2021) 1737); HbA1c ±0.15,
  SBP ±9 mmHg, UACR ×exp(N(0, 0.4)); labs rounded as reported.
* Label: KDIGO 2012 progression, applied to the *latent* eGFR 12 months after the index date
  (the last day of the history): a worse GFR category together with a ≥ 25 % fall, or new
  kidney failure (eGFR < 15). Patients already below 15 at the index date are excluded.
  About 14 % of patients progress (46 % of rapid progressors, 9 % of the others).

Deterministic for a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pipelines.prediction.codes import FEATURE_NAMES
from pipelines.prediction.features import PatientSeries

__all__ = [
    "HORIZON_MONTHS",
    "OUTCOME",
    "Cohort",
    "ckd_epi_2021",
    "creatinine_for_egfr",
    "generate_cohort",
    "gfr_category",
]

HORIZON_MONTHS = 12
OUTCOME = (
    "CKD progression within 12 months: a worse KDIGO GFR category with a >= 25% fall in eGFR, "
    "or new eGFR < 15 mL/min/1.73 m2"
)
_DT = 1.0 / 12.0
_MAX_HISTORY_MONTHS = 48
_F = {name: i for i, name in enumerate(FEATURE_NAMES)}


def ckd_epi_2021(creatinine: np.ndarray, age: np.ndarray, female: np.ndarray) -> np.ndarray:
    """eGFR (mL/min/1.73 m²) from serum creatinine (mg/dL), race-free CKD-EPI 2021."""
    kappa = np.where(female, 0.7, 0.9)
    alpha = np.where(female, -0.241, -0.302)
    ratio = creatinine / kappa
    return (
        142.0 * np.minimum(ratio, 1.0) ** alpha * np.maximum(ratio, 1.0) ** -1.2
        * 0.9938**age * np.where(female, 1.012, 1.0)
    )  # fmt: skip


def creatinine_for_egfr(egfr: np.ndarray, age: np.ndarray, female: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ckd_epi_2021` (piecewise power law, so solvable in closed form)."""
    kappa = np.where(female, 0.7, 0.9)
    alpha = np.where(female, -0.241, -0.302)
    a = egfr / (142.0 * 0.9938**age * np.where(female, 1.012, 1.0))
    return np.where(a >= 1.0, kappa * a ** (1.0 / alpha), kappa * a ** (-1.0 / 1.2))


def gfr_category(egfr: np.ndarray) -> np.ndarray:
    """KDIGO G category as 0 (G1) … 5 (G5): ≥90, 60–89, 45–59, 30–44, 15–29, <15."""
    return 5 - np.digitize(egfr, [15, 30, 45, 60, 90])


@dataclass
class Cohort:
    """Observed series, labels and the latent facts behind them (for analysis, not training)."""

    patients: list[PatientSeries]
    labels: np.ndarray
    egfr_at_index: np.ndarray
    rapid: np.ndarray
    diabetic: np.ndarray


@dataclass
class _Latent:
    months: np.ndarray  # history length per patient
    age: np.ndarray
    female: np.ndarray
    diabetic: np.ndarray
    rapid: np.ndarray
    egfr: np.ndarray  # (n, months + 1) on the monthly grid
    hba1c: np.ndarray
    sbp: np.ndarray
    luacr: np.ndarray


def _simulate(n: int, rng: np.random.Generator) -> _Latent:
    steps = _MAX_HISTORY_MONTHS + HORIZON_MONTHS
    months = rng.integers(18, _MAX_HISTORY_MONTHS + 1, size=n)
    age = rng.uniform(45, 85, n)
    female = rng.random(n) < 0.5
    diabetic = rng.random(n) < 0.4
    rapid = rng.random(n) < 0.2
    frailty = rng.lognormal(0.0, 0.45, n)
    hba1c0 = np.where(diabetic, rng.normal(7.6, 1.1, n), rng.normal(5.6, 0.35, n))
    sbp0 = rng.normal(138, 16, n)
    luacr0 = rng.normal(math.log(25) + 1.2 * diabetic + 0.02 * (sbp0 - 130), 1.1)
    egfr = np.empty((n, steps + 1))
    hba1c, sbp, luacr = np.empty_like(egfr), np.empty_like(egfr), np.empty_like(egfr)
    egfr[:, 0] = np.clip(rng.normal(55, 18, n), 20, 110)
    hba1c[:, 0], sbp[:, 0], luacr[:, 0] = hba1c0, sbp0, luacr0
    sq = math.sqrt(_DT)
    for k in range(steps):
        hba1c[:, k + 1] = hba1c[:, k] + 0.8 * (hba1c0 - hba1c[:, k]) * _DT + rng.normal(0, 0.3 * sq, n)
        sbp[:, k + 1] = sbp[:, k] + 1.0 * (sbp0 - sbp[:, k]) * _DT + rng.normal(0, 8 * sq, n)
        luacr[:, k + 1] = luacr[:, k] + (0.05 + 0.35 * rapid) * _DT + rng.normal(0, 0.25 * sq, n)
        slope = -frailty * (
            1.0
            + 1.2 * np.maximum(hba1c[:, k] - 6.5, 0)
            + 0.07 * np.maximum(sbp[:, k] - 130, 0)
            + 1.8 * np.maximum(luacr[:, k] - math.log(30), 0)
        ) * np.where(rapid, 3.0, 1.0)
        egfr[:, k + 1] = np.maximum(egfr[:, k] + slope * _DT + rng.normal(0, 1.2 * sq, n), 3.0)
    return _Latent(months, age, female, diabetic, rapid, egfr, hba1c, sbp, luacr)


def _observe(i: int, lat: _Latent, rng: np.random.Generator) -> PatientSeries:
    """Irregular, partial, noisy observations of patient ``i``'s history."""
    years = lat.months[i] / 12.0
    rate = rng.uniform(2, 6) * (1.5 if lat.egfr[i, 0] < 45 else 1.0)
    times = np.sort(rng.uniform(0, years, max(rng.poisson(rate * years), 1)))
    grid = np.arange(lat.egfr.shape[1]) * _DT

    def at(series: np.ndarray, t: float) -> float:
        return float(np.interp(t, grid, series[i]))

    rows: list[tuple[float, int, float]] = []
    p_hba1c = 0.75 if lat.diabetic[i] else 0.25
    for v, t in enumerate(times):
        rel, age = t - years, lat.age[i] + t
        visit_start = len(rows)
        kidney = v == 0 or rng.random() < 0.85
        if kidney:
            true_cr = creatinine_for_egfr(np.array(at(lat.egfr, t)), np.array(age), np.array(lat.female[i]))
            cr = round(float(true_cr) * math.exp(rng.normal(0, 0.07)), 2)
            rows.append((rel, _F["creatinine"], cr))
            if rng.random() < 0.8:
                egfr = ckd_epi_2021(np.array(cr), np.array(age), np.array(lat.female[i]))
                rows.append((rel, _F["egfr"], float(round(float(egfr)))))
        if rng.random() < p_hba1c:
            rows.append((rel, _F["hba1c"], round(at(lat.hba1c, t) + rng.normal(0, 0.15), 1)))
        if rng.random() < 0.7 or len(rows) == visit_start:  # a visit records at least its BP
            rows.append((rel, _F["sbp"], float(round(at(lat.sbp, t) + rng.normal(0, 9)))))
        if rng.random() < 0.3:
            rows.append((rel, _F["uacr"], round(math.exp(at(lat.luacr, t) + rng.normal(0, 0.4)), 1)))
    t_arr, f_arr, v_arr = zip(*rows, strict=True)
    return PatientSeries(np.array(t_arr), np.array(f_arr), np.array(v_arr))


def generate_cohort(n: int, seed: int) -> Cohort:
    """``n`` synthetic patients; the same seed gives the same cohort."""
    rng = np.random.default_rng(seed)
    lat = _simulate(int(n * 1.2) + 16, rng)
    idx = np.arange(len(lat.months))
    at_index = lat.egfr[idx, lat.months]
    at_horizon = lat.egfr[idx, lat.months + HORIZON_MONTHS]
    eligible = np.flatnonzero(at_index >= 15)[:n]
    if len(eligible) < n:
        raise RuntimeError("too few eligible synthetic patients; raise the oversampling factor")
    worse = gfr_category(at_horizon) > gfr_category(at_index)
    labels = ((worse & (at_horizon <= 0.75 * at_index)) | (at_horizon < 15)).astype(np.int64)
    patients = [_observe(int(i), lat, rng) for i in eligible]
    return Cohort(
        patients=patients,
        labels=labels[eligible],
        egfr_at_index=at_index[eligible],
        rapid=lat.rapid[eligible],
        diabetic=lat.diabetic[eligible],
    )
