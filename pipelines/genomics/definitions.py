"""The CPIC-derived tables in ``data/``, loaded once into typed objects.

Everything clinical lives in those files (see ``data/README.md`` for sources and what could not be
verified offline); this module only parses and cross-checks them, so a typo in a table fails at load
time instead of silently mis-calling a genotype.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFINITIONS_VERSION",
    "BUILDS",
    "Variant",
    "Region",
    "AlleleDefinition",
    "Gene",
    "Recommendation",
    "Guideline",
    "Definitions",
    "load_definitions",
]

DATA_DIR = Path(__file__).parent / "data"
DEFINITIONS_VERSION = "cpic-core-2025.11-r3"
BUILDS = ("GRCh37", "GRCh38")
Action = Literal["standard", "decrease", "alternative"]


@dataclass(frozen=True)
class Variant:
    """One core SNV: ``ref`` is the base of the gene's reference allele, ``alt`` the defining base.

    Both are plus-strand and build-independent; ``genome_ref`` is what each build's reference
    sequence has at the position, which is ``alt`` where that sequence carries the variant
    (CYP2C19 c.991A>G and DPYD c.85T>C on GRCh37). A VCF's REF column must match ``genome_ref``.
    """

    gene: str
    rsid: str
    hgvs_c: str
    chrom: str
    positions: dict[str, int]
    genome_refs: dict[str, str]
    ref: str
    alt: str

    def position(self, build: str) -> int:
        return self.positions[build]

    def genome_ref(self, build: str) -> str:
        return self.genome_refs[build]

    def genome_alt(self, build: str) -> str:
        """The base a non-reference call carries here on ``build`` (``ref`` where the build has ``alt``)."""
        return self.alt if self.genome_refs[build] == self.ref else self.ref


@dataclass(frozen=True)
class Region:
    """A gene's span (1-based, inclusive) per build, searched for variants the node does not assess."""

    gene: str
    chrom: str
    bounds: dict[str, tuple[int, int]]

    def contains(self, build: str, position: int) -> bool:
        start, end = self.bounds[build]
        return start <= position <= end


@dataclass(frozen=True)
class AlleleDefinition:
    """A star allele (or one CPIC sub-allele of it): the set of core variants it carries.

    ``indices`` are the same variants as positions in ``Gene.variants``, for the diplotype search.
    """

    gene: str
    name: str
    function: str
    activity_value: float | None
    variants: frozenset[str]
    order: int
    indices: frozenset[int]


@dataclass(frozen=True)
class Gene:
    """A gene's variants, allele definitions and phenotype rule (CPIC function pairs or activity score)."""

    symbol: str
    hgnc: str
    region: Region
    variants: tuple[Variant, ...]
    alleles: tuple[AlleleDefinition, ...]
    method: Literal["function_pair", "activity_score"]
    pair_rules: dict[frozenset[str], str]
    score_ranges: tuple[tuple[float, float, str], ...]
    source: str
    unphased_note: str

    def phenotype_for(self, first: AlleleDefinition, second: AlleleDefinition) -> tuple[str, float | None]:
        """Phenotype and activity score (activity-score genes only) of one diplotype."""
        if self.method == "activity_score":
            if first.activity_value is None or second.activity_value is None:
                return "Indeterminate", None
            score = first.activity_value + second.activity_value
            for low, high, phenotype in self.score_ranges:
                if low <= score <= high:
                    return phenotype, score
            return "Indeterminate", score
        key = frozenset((first.function, second.function))
        return self.pair_rules.get(key, "Indeterminate"), None


@dataclass(frozen=True)
class Recommendation:
    text: str
    strength: str
    action: Action


@dataclass(frozen=True)
class Guideline:
    """One CPIC guideline table: drugs (name, RxNorm), genes and the keyed recommendations.

    ``checked_genes`` are genes the guideline depends on that are not called (CYP4F2 for warfarin):
    only their regions are searched, and a non-reference call there withholds the recommendation.
    """

    id: str
    drugs: tuple[tuple[str, str], ...]
    genes: tuple[str, ...]
    checked_genes: tuple[str, ...]
    key: Literal["phenotype", "activity_score", "diplotype"]
    guideline: str
    citation: str
    url: str
    note: str
    preamble: str
    fallback: Recommendation | None
    recommendations: dict[str, Recommendation]


@dataclass(frozen=True)
class Definitions:
    version: str
    genes: dict[str, Gene]
    regions: dict[str, Region]
    guidelines: tuple[Guideline, ...]
    loinc_answers: dict[str, tuple[str, str]]
    actions: dict[str, tuple[str, str]]


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip() and not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def _recommendation(raw: dict[str, str]) -> Recommendation:
    if raw["action"] not in ("standard", "decrease", "alternative"):
        raise ValueError(f"unknown recommendation action {raw['action']!r}")
    return Recommendation(raw["text"], raw["strength"], raw["action"])  # type: ignore[arg-type]


def _load_regions(data_dir: Path) -> dict[str, Region]:
    regions: dict[str, Region] = {}
    for row in _read_tsv(data_dir / "regions.tsv"):
        bounds = {b: (int(row[f"{b.lower()}_start"]), int(row[f"{b.lower()}_end"])) for b in BUILDS}
        if any(start > end for start, end in bounds.values()):
            raise ValueError(f"region {row['gene']}: start after end")
        if row["gene"] in regions:
            raise ValueError(f"region {row['gene']} listed twice")
        regions[row["gene"]] = Region(row["gene"], row["chrom"], bounds)
    return regions


def _load_variants(data_dir: Path, regions: dict[str, Region]) -> dict[str, list[Variant]]:
    variants: dict[str, list[Variant]] = {}
    for row in _read_tsv(data_dir / "variants.tsv"):
        variant = Variant(
            gene=row["gene"],
            rsid=row["rsid"],
            hgvs_c=row["hgvs_c"],
            chrom=row["chrom"],
            positions={b: int(row[f"{b.lower()}_pos"]) for b in BUILDS},
            genome_refs={b: row[f"{b.lower()}_ref"] for b in BUILDS},
            ref=row["ref"],
            alt=row["alt"],
        )
        if len(variant.ref) != 1 or len(variant.alt) != 1 or variant.ref == variant.alt:
            raise ValueError(f"{variant.rsid}: only SNVs are supported, got {variant.ref}>{variant.alt}")
        if not set(variant.genome_refs.values()) <= {variant.ref, variant.alt}:
            raise ValueError(f"{variant.rsid}: build reference bases {variant.genome_refs} are neither ref nor alt")
        region = regions.get(variant.gene)
        if region is None or region.chrom != variant.chrom:
            raise ValueError(f"{variant.rsid}: no region for {variant.gene} on chromosome {variant.chrom}")
        outside = [b for b in BUILDS if not region.contains(b, variant.position(b))]
        if outside:
            raise ValueError(f"{variant.rsid}: position outside the {variant.gene} region on {', '.join(outside)}")
        variants.setdefault(variant.gene, []).append(variant)
    return variants


def _load_genes(data_dir: Path, regions: dict[str, Region]) -> dict[str, Gene]:
    variants = {gene: sorted(found, key=lambda v: v.positions["GRCh38"])
                for gene, found in _load_variants(data_dir, regions).items()}
    index = {gene: {v.rsid: i for i, v in enumerate(found)} for gene, found in variants.items()}
    alleles: dict[str, list[AlleleDefinition]] = {}
    for order, row in enumerate(_read_tsv(data_dir / "alleles.tsv")):
        gene = row["gene"]
        carried = frozenset(v for v in row["variants"].split(";") if v)
        known = index.get(gene, {})
        if not carried <= known.keys():
            raise ValueError(f"{gene} {row['allele']}: variants {sorted(carried - known.keys())} not in variants.tsv")
        value = row["activity_value"]
        alleles.setdefault(gene, []).append(
            AlleleDefinition(gene, row["allele"], row["function"], float(value) if value else None, carried, order,
                             frozenset(known[rsid] for rsid in carried))
        )

    rules = json.loads((data_dir / "phenotypes.json").read_text(encoding="utf-8"))["genes"]
    genes: dict[str, Gene] = {}
    for symbol, spec in rules.items():
        if symbol not in variants or symbol not in alleles:
            raise ValueError(f"{symbol}: phenotype rules without variants or alleles")
        if sum(1 for a in alleles[symbol] if not a.variants) != 1:
            raise ValueError(f"{symbol}: exactly one reference allele (no variants) is required")
        functions = {a.function for a in alleles[symbol]}
        for rule in spec.get("rules", []):
            if not set(rule["functions"]) <= functions:
                raise ValueError(f"{symbol}: rule functions {rule['functions']} not among allele functions {functions}")
        genes[symbol] = Gene(
            symbol=symbol,
            hgnc=spec["hgnc"],
            region=regions[symbol],
            variants=tuple(variants[symbol]),
            alleles=tuple(alleles[symbol]),
            method=spec["method"],
            pair_rules={frozenset(r["functions"]): r["phenotype"] for r in spec.get("rules", [])},
            score_ranges=tuple((r["min"], r["max"], r["phenotype"]) for r in spec.get("ranges", [])),
            source=spec["source"],
            unphased_note=spec.get("unphased_note", ""),
        )
    return genes


def _load_guidelines(data_dir: Path, genes: dict[str, Gene],
                     regions: dict[str, Region]) -> tuple[dict, tuple[Guideline, ...]]:
    raw = json.loads((data_dir / "recommendations.json").read_text(encoding="utf-8"))
    guidelines = []
    for g in raw["guidelines"]:
        unknown = [gene for gene in g["genes"] if gene not in genes]
        if unknown:
            raise ValueError(f"guideline {g['id']}: unknown genes {unknown}")
        unchecked = [gene for gene in g.get("checked_genes", []) if gene not in regions or gene in genes]
        if unchecked:
            raise ValueError(f"guideline {g['id']}: checked genes {unchecked} need a region and must not be called")
        if g["key"] == "phenotype":
            gene = genes[g["genes"][0]]
            phenotypes = set(gene.pair_rules.values()) | {p for _, _, p in gene.score_ranges}
            if not set(g["recommendations"]) <= phenotypes:
                raise ValueError(f"guideline {g['id']}: keys {sorted(set(g['recommendations']) - phenotypes)} "
                                 f"are not {gene.symbol} phenotypes")
        guidelines.append(
            Guideline(
                id=g["id"],
                drugs=tuple((name, rxnorm) for name, rxnorm in g["drugs"]),
                genes=tuple(g["genes"]),
                checked_genes=tuple(g.get("checked_genes", [])),
                key=g["key"],
                guideline=g["guideline"],
                citation=g["citation"],
                url=g["url"],
                note=g.get("note", ""),
                preamble=g.get("preamble", ""),
                fallback=_recommendation(g["fallback"]) if "fallback" in g else None,
                recommendations={k: _recommendation(v) for k, v in g["recommendations"].items()},
            )
        )
    return raw["actions"], tuple(guidelines)


@cache
def load_definitions(data_dir: Path = DATA_DIR) -> Definitions:
    """Parse and cross-check the tables (cached: they are read once per process)."""
    regions = _load_regions(data_dir)
    genes = _load_genes(data_dir, regions)
    actions, guidelines = _load_guidelines(data_dir, genes, regions)
    answers = json.loads((data_dir / "phenotypes.json").read_text(encoding="utf-8"))["loinc_answers"]
    return Definitions(
        version=DEFINITIONS_VERSION,
        genes=genes,
        regions=regions,
        guidelines=guidelines,
        loinc_answers={k: (v[0], v[1]) for k, v in answers.items() if not k.startswith("_")},
        actions={k: (v[0], v[1]) for k, v in actions.items()},
    )
