"""The per-molecule half of a screen: standardise, describe, apply rules and alerts,
fingerprint — turning :class:`~pipelines.drug.library.Record` chunks into
:class:`Candidate` rows and a fingerprint matrix.

Kept free of torch so worker processes that run it start quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rdkit import Chem, rdBase

from pipelines.drug.chem import (
    FP_BITS,
    RDKIT_ERRORS,
    AlertFilter,
    MolDescriptors,
    Standardiser,
    compute_descriptors,
    lipinski,
    morgan_bits,
    veber,
)
from pipelines.drug.library import Record

__all__ = ["CSV_COLUMNS", "Candidate", "ChemistryStage", "init_worker", "run_worker"]


@dataclass
class Candidate:
    """One screened molecule, as written to the ranked CSV/JSON."""

    index: int
    id: str
    input_smiles: str | None
    status: str = "ok"
    smiles: str | None = None
    mw: float | None = None
    clogp: float | None = None
    hbd: int | None = None
    hba: int | None = None
    tpsa: float | None = None
    rotatable_bonds: int | None = None
    lipinski_violations: int | None = None
    lipinski_pass: bool | None = None
    veber_pass: bool | None = None
    pains: list[str] = field(default_factory=list)
    brenk: list[str] = field(default_factory=list)
    novelty: float | None = None
    novel: bool | None = None
    ref_similarity: float | None = None
    nearest_reference: str | None = None
    predicted_pic50: float | None = None  # None outside the activity model's applicability domain
    domain_similarity: float | None = None
    in_domain: bool | None = None
    score: float = 0.0
    verdict: str = "invalid"
    rank: int = 0
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CSV_COLUMNS}


CSV_COLUMNS = (
    "rank", "id", "verdict", "score", "status", "input_smiles", "smiles", "mw", "clogp", "hbd", "hba",
    "tpsa", "rotatable_bonds", "lipinski_violations", "lipinski_pass", "veber_pass", "pains", "brenk",
    "novelty", "novel", "ref_similarity", "nearest_reference", "predicted_pic50", "domain_similarity",
    "in_domain", "reasons", "index",
)  # fmt: skip


class ChemistryStage:
    """Holds the reusable RDKit objects; one per process."""

    def __init__(self, tautomer: bool = False) -> None:
        self.standardise = Standardiser(tautomer=tautomer)
        self.alerts = AlertFilter()

    def __call__(self, records: list[Record]) -> tuple[list[Candidate], np.ndarray]:
        """Candidates for every record (invalid ones keep their reason) and the fingerprints
        of the valid ones, in order."""
        candidates, fps = [], []
        with rdBase.BlockLogs():
            for record in records:
                cand = Candidate(record.index, record.id, record.smiles)
                candidates.append(cand)
                if record.mol is None:
                    _invalid(cand, record.error or "unreadable")
                    continue
                try:
                    mol = self.standardise(record.mol)
                except RDKIT_ERRORS as exc:
                    _invalid(cand, f"standardisation failed ({exc})")
                    continue
                cand.smiles = Chem.MolToSmiles(mol)
                _judge(cand, compute_descriptors(mol), *self.alerts(mol))
                fps.append(morgan_bits(mol))
        matrix = np.stack(fps) if fps else np.zeros((0, FP_BITS), dtype=np.uint8)
        return candidates, matrix


def _invalid(cand: Candidate, reason: str) -> None:
    cand.status = f"invalid: {reason}"
    cand.reasons = [cand.status]


def _judge(cand: Candidate, d: MolDescriptors, pains: tuple[str, ...], brenk: tuple[str, ...]) -> None:
    """Fill descriptors, rule results, alerts, the verdict and the reasons behind it."""
    lip, veb = lipinski(d), veber(d)
    cand.mw, cand.clogp, cand.tpsa = round(d.mw, 2), round(d.clogp, 3), round(d.tpsa, 2)
    cand.hbd, cand.hba, cand.rotatable_bonds = d.hbd, d.hba, d.rotatable_bonds
    cand.lipinski_violations, cand.lipinski_pass, cand.veber_pass = len(lip.violations), lip.passed, veb.passed
    cand.pains, cand.brenk = list(pains), list(brenk)
    n = len(lip.violations)
    detail = f"{n} violation{'s' if n != 1 else ''}" + (f": {'; '.join(lip.violations)}" if n else "")
    cand.reasons = [
        f"Lipinski {'pass' if lip.passed else 'fail'} ({detail})",
        "Veber pass" if veb.passed else f"Veber fail ({'; '.join(veb.violations)})",
        f"PAINS: {', '.join(pains)}" if pains else "PAINS: none",
        f"Brenk: {', '.join(brenk)}" if brenk else "Brenk: none",
    ]
    if not (lip.passed and veb.passed) or pains:
        cand.verdict = "fail"
    else:
        cand.verdict = "pass with alerts" if brenk else "pass"


_WORKER_STAGE: ChemistryStage | None = None


def init_worker(tautomer: bool) -> None:
    """Process-pool initializer: build this worker's RDKit objects once."""
    global _WORKER_STAGE
    _WORKER_STAGE = ChemistryStage(tautomer)


def run_worker(records: list[Record]) -> tuple[list[Candidate], np.ndarray]:
    if _WORKER_STAGE is None:
        raise RuntimeError("init_worker was not called in this process")
    return _WORKER_STAGE(records)
