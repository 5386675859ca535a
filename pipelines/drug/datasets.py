"""Data the drug model is trained and evaluated on, all shipped inside the RDKit wheel (no
download), plus the reference-drug set shipped with this pipeline.

* Activity: ``Contrib/FreeWilson/data/CHEMBL2321810.smi`` + ``CHEMBL2321810_act.csv`` — 1017
  aryl sulfonamides from ChEMBL with pIC50 values, described by :data:`ACTIVITY_SOURCE`. The
  files, RDKit's README and its tests name the ChEMBL set (CHEMBL2321810) but not the
  biological target or the assay type, so neither is claimed.
* Chemical background for the autoencoder: the NCI ``Data/NCI/first_5K.smi`` set, the ChEMBL
  actives of ``Contrib/fraggle`` and the CDK2 ligands of ``Contrib/Fastcluster``, plus the
  activity series itself.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rdkit import RDConfig, rdBase

from pipelines.base import PipelineError
from pipelines.drug.chem import FP_BITS, RDKIT_ERRORS, Standardiser, morgan_bits
from pipelines.drug.library import parse_smiles

__all__ = [
    "ACTIVITY_SOURCE",
    "DEFAULT_REFERENCE_PATH",
    "ActivityEndpoint",
    "fingerprint_smiles",
    "load_activity_data",
    "load_background_smiles",
    "load_reference",
]

DEFAULT_REFERENCE_PATH = Path(__file__).parent / "data" / "reference_drugs.csv"
_CONTRIB = Path(RDConfig.RDContribDir)
_DATA = Path(RDConfig.RDDataDir)


@dataclass(frozen=True)
class ActivityEndpoint:
    """What an activity data set measures — and so what a model trained on it predicts: the
    endpoint, the ChEMBL identifier of the set, the compound series, where the files come from
    and, where the data name it, the biological target."""

    endpoint: str
    chembl_id: str
    series: str
    source: str
    target: str | None = None

    @property
    def column(self) -> str:
        """A table column for a prediction of it, e.g. ``predicted_pic50_CHEMBL2321810``."""
        return f"predicted_{self.endpoint.lower()}_{self.chembl_id}"

    @property
    def label(self) -> str:
        target = self.target or "target not stated in the source data"
        return f"{self.endpoint} for ChEMBL {self.chembl_id} ({self.series}; {target})"


# The files name their ChEMBL set and give pIC50; neither they nor RDKit's README and tests
# name the biological target or the assay type, so no target is claimed.
ACTIVITY_SOURCE = ActivityEndpoint(
    endpoint="pIC50",
    chembl_id="CHEMBL2321810",
    series="aryl sulfonamide series, RDKit FreeWilson example",
    source="RDKit Contrib/FreeWilson/data/CHEMBL2321810.smi + CHEMBL2321810_act.csv (ChEMBL)",
)


def _smiles_file(path: Path, smiles_first: bool = True) -> list[tuple[str, str]]:
    """(smiles, id) pairs of a whitespace-separated SMILES file."""
    pairs = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2:
            pairs.append((fields[0], fields[1]) if smiles_first else (fields[1], fields[0]))
    return pairs


def load_activity_data() -> tuple[list[str], np.ndarray, list[str]]:
    """SMILES, pIC50 and ChEMBL ids of the FreeWilson example series, in file order."""
    folder = _CONTRIB / "FreeWilson" / "data"
    with open(folder / "CHEMBL2321810_act.csv", newline="") as handle:
        activity = {row["Name"]: float(row["Act"]) for row in csv.DictReader(handle)}
    pairs = [(s, i) for s, i in _smiles_file(folder / "CHEMBL2321810.smi") if i in activity]
    return [s for s, _ in pairs], np.array([activity[i] for _, i in pairs], dtype=np.float32), [i for _, i in pairs]


def load_background_smiles() -> list[str]:
    """SMILES of the RDKit-shipped sets the autoencoder learns 'known chemistry' from."""
    smiles = [s for s, _ in _smiles_file(_DATA / "NCI" / "first_5K.smi")]
    smiles += [s for s, _ in _smiles_file(_CONTRIB / "fraggle" / "data" / "ChEMBL_11265_actives.smi")]
    smiles += [s for s, _ in _smiles_file(_CONTRIB / "Fastcluster" / "cdk2.smi", smiles_first=False)]
    smiles += load_activity_data()[0]
    return smiles


def load_reference(path: Path = DEFAULT_REFERENCE_PATH) -> list[tuple[str, str]]:
    """(name, smiles) rows of a reference file with ``name`` and ``smiles`` columns."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [(r["name"].strip(), r["smiles"].strip()) for r in csv.DictReader(handle)]
    except (OSError, KeyError, AttributeError) as exc:
        raise PipelineError(f"cannot read reference set {Path(path).name}: needs name,smiles columns") from exc
    if not rows:
        raise PipelineError(f"reference set {Path(path).name} is empty")
    return rows


def fingerprint_smiles(smiles: Iterable[str], standardiser: Standardiser) -> tuple[np.ndarray, np.ndarray]:
    """Fingerprints of the SMILES that parse and standardise, and a mask of which did."""
    fps, keep = [], []
    with rdBase.BlockLogs():
        for s in smiles:
            mol, _ = parse_smiles(s)
            if mol is not None:
                try:
                    mol = standardiser(mol)
                except RDKIT_ERRORS:
                    mol = None
            keep.append(mol is not None)
            if mol is not None:
                fps.append(morgan_bits(mol))
    matrix = np.stack(fps) if fps else np.zeros((0, FP_BITS), dtype=np.uint8)
    return matrix, np.array(keep, dtype=bool)
