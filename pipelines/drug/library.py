"""Read a compound library (SMILES text, CSV/TSV with a SMILES column, or SDF) one molecule at
a time, so a 10k+ library streams instead of loading at once.

A molecule RDKit cannot read or sanitise becomes a :class:`Record` with ``error`` set — one bad
row must not sink a screen — while a file that is not a library at all raises
:class:`~pipelines.base.PipelineError`.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rdkit import Chem, rdBase

from pipelines.base import PipelineError

__all__ = ["Record", "parse_smiles", "read_library"]

_SMILES_COLUMNS = ("smiles", "canonical_smiles", "smi")
_ID_COLUMNS = ("id", "name", "compound_id", "mol_id", "identifier")
_SMILES_SUFFIXES = (".smi", ".smiles", ".txt")
_SDF_SUFFIXES = (".sdf", ".sd", ".sdf.gz")


@dataclass
class Record:
    """One input molecule: its position, identifier, input SMILES (None for SDF) and either a
    sanitised molecule or the reason it could not be read."""

    index: int
    id: str
    smiles: str | None
    mol: Chem.Mol | None
    error: str | None = None


def parse_smiles(smiles: str) -> tuple[Chem.Mol | None, str | None]:
    """Parse then sanitise separately so the failure reason (e.g. a valence error) is kept."""
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        if mol is None:
            return None, "SMILES syntax error"
        return _sanitise(mol)


def _sanitise(mol: Chem.Mol) -> tuple[Chem.Mol | None, str | None]:
    try:
        Chem.SanitizeMol(mol)
    except Chem.MolSanitizeException as exc:
        return None, str(exc).strip() or type(exc).__name__
    if mol.GetNumAtoms() == 0:
        return None, "no atoms"
    return mol, None


def read_library(path: Path) -> Iterator[Record]:
    """Yield the molecules of ``path``; the format follows the suffix (.smi/.smiles/.txt,
    .csv/.tsv, .sdf/.sd/.sdf.gz)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"library file not found: {path.name}")
    name = path.name.lower()
    if name.endswith(_SDF_SUFFIXES):
        records = _read_sdf(path)
    elif name.endswith((".csv", ".tsv")):
        records = _read_table(path, delimiter="\t" if name.endswith(".tsv") else ",")
    elif name.endswith(_SMILES_SUFFIXES):
        records = _read_smiles_lines(path)
    else:
        raise PipelineError(f"unsupported library format {path.suffix!r}: use .smi, .csv, .tsv or .sdf")
    try:
        yield from records
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        raise PipelineError(f"cannot read {path.name}: {exc}") from exc


def _read_smiles_lines(path: Path) -> Iterator[Record]:
    """Daylight SMILES file: ``SMILES [whitespace identifier]`` per line; a ``smiles`` header,
    blank lines and ``#`` comments are skipped."""
    index = 0
    with _open_text(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split(maxsplit=1)
            if not fields or fields[0].startswith("#"):
                continue
            if line_no == 1 and fields[0].lower() in _SMILES_COLUMNS:
                continue
            smiles = fields[0]
            mol_id = fields[1].strip() if len(fields) > 1 else f"row{index + 1}"
            yield _record(index, mol_id, smiles)
            index += 1


def _read_table(path: Path, delimiter: str) -> Iterator[Record]:
    with _open_text(path) as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        columns = {c.strip().lower(): c for c in reader.fieldnames or []}
        smiles_col = next((columns[c] for c in _SMILES_COLUMNS if c in columns), None)
        if smiles_col is None:
            raise PipelineError(f"no SMILES column in {path.name}: expected one of {', '.join(_SMILES_COLUMNS)}")
        id_col = next((columns[c] for c in _ID_COLUMNS if c in columns), None)
        for index, row in enumerate(reader):
            smiles = (row.get(smiles_col) or "").strip()
            mol_id = (row.get(id_col) or "").strip() if id_col else ""
            yield _record(index, mol_id or f"row{index + 1}", smiles)


def _read_sdf(path: Path) -> Iterator[Record]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle, rdBase.BlockLogs():
        supplier = Chem.ForwardSDMolSupplier(handle, sanitize=False, removeHs=False)
        for index, mol in enumerate(supplier):
            if mol is None:
                yield Record(index, f"mol{index + 1}", None, None, "unreadable MDL molblock")
                continue
            mol_id = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
            if not mol_id and mol.HasProp("id"):
                mol_id = mol.GetProp("id").strip()
            parsed, error = _sanitise(mol)
            yield Record(index, mol_id or f"mol{index + 1}", None, parsed, error)


def _record(index: int, mol_id: str, smiles: str) -> Record:
    if not smiles:
        return Record(index, mol_id, smiles, None, "empty SMILES")
    mol, error = parse_smiles(smiles)
    return Record(index, mol_id, smiles, mol, error)


def _open_text(path: Path) -> IO[str]:
    return open(path, encoding="utf-8", newline="")
