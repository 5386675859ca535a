"""Generate a screening library from RDKit-shipped molecules, for throughput runs and demos.

    python -m pipelines.drug.make_library /tmp/lib10k.smi            # 10,000 molecules
    python -m pipelines.drug.make_library /tmp/lib.sdf --size 2000

The shipped sets (NCI first 5K, the ChEMBL sulfonamide series, fraggle actives, CDK2 ligands;
about 6,200 molecules) are topped up with enumerated analogues: one aromatic C–H replaced by
F, Cl, CH3, OCH3 or CN at a seeded-random site, the usual first-round medicinal-chemistry
substitutions. Every SMILES is unique (canonical). ``--invalid N`` appends N deliberately
broken SMILES to exercise per-row error reporting. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from rdkit import Chem, rdBase
from rdkit.Chem import AllChem

from pipelines.drug.datasets import load_background_smiles

__all__ = ["main", "make_library", "write_library"]

_SUBSTITUENTS = ("F", "Cl", "C", "OC", "C#N")
_AROMATIC_CH = Chem.MolFromSmarts("[cH]")
_BROKEN = ("C1CC", "c1ccccc1(", "C(C)(C)(C)(C)C", "N#N#N", "Xx")


def _analogue(mol: Chem.Mol, rng: random.Random) -> str | None:
    """Replace one aromatic H (random site) with a random substituent; None if not possible."""
    sites = [match[0] for match in mol.GetSubstructMatches(_AROMATIC_CH)]
    if not sites:
        return None
    site, group = rng.choice(sites), rng.choice(_SUBSTITUENTS)
    edit = Chem.RWMol(mol)
    sub = Chem.MolFromSmiles(group)
    combined = Chem.RWMol(Chem.CombineMols(edit, sub))
    combined.AddBond(site, mol.GetNumAtoms(), Chem.BondType.SINGLE)
    combined.GetAtomWithIdx(site).SetNumExplicitHs(0)
    try:
        Chem.SanitizeMol(combined)
    except (ValueError, RuntimeError):
        return None
    return Chem.MolToSmiles(combined)


def make_library(size: int = 10_000, seed: int = 0, invalid: int = 0) -> list[tuple[str, str]]:
    """(id, smiles) rows: the shipped molecules first, then analogues until ``size``."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows: list[tuple[str, str]] = []
    parents: list[Chem.Mol] = []
    with rdBase.BlockLogs():
        for smiles in load_background_smiles():
            mol = Chem.MolFromSmiles(smiles)
            canonical = Chem.MolToSmiles(mol) if mol is not None else None
            if canonical and canonical not in seen:
                seen.add(canonical)
                parents.append(mol)
                rows.append((f"RDK{len(rows) + 1:06d}", canonical))
        rows = rows[:size]
        attempts = 0
        while len(rows) < size and attempts < size * 20:
            attempts += 1
            analogue = _analogue(rng.choice(parents), rng)
            if analogue and analogue not in seen:
                seen.add(analogue)
                rows.append((f"ENU{len(rows) + 1:06d}", analogue))
    rows += [(f"BAD{i + 1:06d}", _BROKEN[i % len(_BROKEN)]) for i in range(invalid)]
    return rows


def write_library(rows: list[tuple[str, str]], path: Path) -> None:
    """Write ``.smi`` (SMILES id), ``.csv`` (id,smiles) or ``.sdf`` (2D, name = id)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".sdf":
        with Chem.SDWriter(str(path)) as writer, rdBase.BlockLogs():
            for mol_id, smiles in rows:
                mol = Chem.MolFromSmiles(smiles)
                if mol is None:
                    continue  # an SDF cannot carry an unparseable SMILES
                AllChem.Compute2DCoords(mol)
                mol.SetProp("_Name", mol_id)
                writer.write(mol)
    elif suffix == ".csv":
        path.write_text("id,smiles\n" + "".join(f"{i},{s}\n" for i, s in rows))
    else:
        path.write_text("".join(f"{s} {i}\n" for i, s in rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="output file: .smi, .csv or .sdf")
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--invalid", type=int, default=0, help="append N broken SMILES")
    args = parser.parse_args(argv)
    rows = make_library(args.size, args.seed, args.invalid)
    write_library(rows, args.out)
    print(f"wrote {len(rows)} molecules to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
