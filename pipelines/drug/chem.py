"""Per-molecule chemistry: standardisation, descriptors, drug-likeness rules, structural alerts
and Morgan fingerprints, all with RDKit.

Rules are applied as published:

* Lipinski's rule of five (Lipinski et al., Adv Drug Deliv Rev 23 (1997) 3-25): MW ≤ 500,
  cLogP ≤ 5, H-bond donors (NH + OH) ≤ 5, H-bond acceptors (N + O) ≤ 10. Poor absorption is
  "more likely" when *more than one* limit is exceeded, so one violation still passes.
* Veber's rules (Veber et al., J Med Chem 45 (2002) 2615-2623): rotatable bonds ≤ 10 and
  polar surface area ≤ 140 Å², both required.
* PAINS families A/B/C (Baell & Holloway, J Med Chem 53 (2010) 2719-2740) and Brenk's unwanted
  groups (Brenk et al., ChemMedChem 3 (2008) 435-444) from RDKit's FilterCatalog.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from rdkit import Chem
from rdkit.Chem import Crippen, Descriptors, rdFingerprintGenerator, rdMolDescriptors
from rdkit.Chem.FilterCatalog import (
    FilterCatalog,
    FilterCatalogEntry,
    FilterCatalogParams,
)
from rdkit.Chem.MolStandardize import rdMolStandardize

__all__ = [
    "FP_BITS",
    "FP_RADIUS",
    "RDKIT_ERRORS",
    "AlertFilter",
    "MolDescriptors",
    "RuleResult",
    "Standardiser",
    "compute_descriptors",
    "lipinski",
    "morgan_bits",
    "veber",
]

FP_RADIUS = 2
FP_BITS = 2048
# Bounds on tautomer enumeration keep a pathological molecule from stalling a 10k-molecule screen.
_MAX_TAUTOMERS = 200
_MAX_TRANSFORMS = 200

# What RDKit raises on a molecule it cannot standardise (MolSanitizeException is a ValueError).
RDKIT_ERRORS: tuple[type[Exception], ...] = (RuntimeError, ValueError)

_FP_GENERATOR = rdFingerprintGenerator.GetMorganGenerator(radius=FP_RADIUS, fpSize=FP_BITS)


@dataclass(frozen=True)
class MolDescriptors:
    """The six properties the Lipinski and Veber rules read (HBD/HBA as Lipinski counted them)."""

    mw: float
    clogp: float
    hbd: int
    hba: int
    tpsa: float
    rotatable_bonds: int


@dataclass(frozen=True)
class RuleResult:
    """Whether a rule passed and which of its limits were exceeded (e.g. ``"MW 1202.6 > 500"``)."""

    passed: bool
    violations: tuple[str, ...]


class Standardiser:
    """RDKit MolStandardize in the order its authors recommend: cleanup (normalise, reionise,
    disconnect metals) → largest organic fragment (drops salts/solvents) → neutralise →
    canonical tautomer (optional: the slowest step, so a screen can trade it for speed).

    Raises whatever RDKit raises on a molecule it cannot process; the caller reports it per row.
    """

    def __init__(self, tautomer: bool = False) -> None:
        params = rdMolStandardize.CleanupParameters()
        params.maxTautomers = _MAX_TAUTOMERS
        params.maxTransforms = _MAX_TRANSFORMS
        self._params = params
        self._fragment = rdMolStandardize.LargestFragmentChooser(params)
        self._uncharger = rdMolStandardize.Uncharger()
        self._tautomer = rdMolStandardize.TautomerEnumerator(params) if tautomer else None

    def __call__(self, mol: Chem.Mol) -> Chem.Mol:
        mol = rdMolStandardize.Cleanup(mol, self._params)
        mol = self._fragment.choose(mol)
        mol = self._uncharger.uncharge(mol)
        if self._tautomer is not None:
            mol = self._tautomer.Canonicalize(mol)
        return mol


def compute_descriptors(mol: Chem.Mol) -> MolDescriptors:
    return MolDescriptors(
        mw=Descriptors.MolWt(mol),
        clogp=Crippen.MolLogP(mol),
        hbd=rdMolDescriptors.CalcNumLipinskiHBD(mol),
        hba=rdMolDescriptors.CalcNumLipinskiHBA(mol),
        tpsa=rdMolDescriptors.CalcTPSA(mol),
        rotatable_bonds=rdMolDescriptors.CalcNumRotatableBonds(mol),
    )


def lipinski(d: MolDescriptors) -> RuleResult:
    """Rule of five; passes with at most one violation (Lipinski 1997)."""
    violations = []
    if d.mw > 500:
        violations.append(f"MW {d.mw:.1f} > 500")
    if d.clogp > 5:
        violations.append(f"cLogP {d.clogp:.2f} > 5")
    if d.hbd > 5:
        violations.append(f"HBD {d.hbd} > 5")
    if d.hba > 10:
        violations.append(f"HBA {d.hba} > 10")
    return RuleResult(passed=len(violations) <= 1, violations=tuple(violations))


def veber(d: MolDescriptors) -> RuleResult:
    """Oral bioavailability in rat: ≤ 10 rotatable bonds and TPSA ≤ 140 Å² (Veber 2002)."""
    violations = []
    if d.rotatable_bonds > 10:
        violations.append(f"rotatable bonds {d.rotatable_bonds} > 10")
    if d.tpsa > 140:
        violations.append(f"TPSA {d.tpsa:.1f} > 140")
    return RuleResult(passed=not violations, violations=tuple(violations))


class AlertFilter:
    """PAINS (A, B, C) and Brenk substructure alerts, from one combined catalog.

    RDKit's multi-threaded ``RunFilterCatalog`` was tried and was no faster here (it re-parses
    SMILES and its threads contended); parallelism comes from screening chunks in processes.
    """

    def __init__(self) -> None:
        params = FilterCatalogParams()
        for catalog in (
            FilterCatalogParams.FilterCatalogs.PAINS_A,
            FilterCatalogParams.FilterCatalogs.PAINS_B,
            FilterCatalogParams.FilterCatalogs.PAINS_C,
            FilterCatalogParams.FilterCatalogs.BRENK,
        ):
            params.AddCatalog(catalog)
        self._catalog = FilterCatalog(params)

    def __call__(self, mol: Chem.Mol) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(PAINS alert names, Brenk alert names), each sorted."""
        return _split_families(self._catalog.GetMatches(mol))


def _split_families(entries: Iterable[FilterCatalogEntry]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    pains, brenk = set(), set()
    for entry in entries:
        (pains if entry.GetProp("FilterSet").startswith("PAINS") else brenk).add(entry.GetDescription())
    return tuple(sorted(pains)), tuple(sorted(brenk))


def morgan_bits(mol: Chem.Mol) -> np.ndarray:
    """Morgan (ECFP4-like, radius 2) bit vector as a uint8 array of length :data:`FP_BITS`."""
    return _FP_GENERATOR.GetFingerprintAsNumPy(mol).astype(np.uint8, copy=False)
