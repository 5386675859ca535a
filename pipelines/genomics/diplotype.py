"""Star-allele diplotypes from the genotypes at a gene's core positions.

A diplotype is a pair of defined alleles (``alleles.tsv``) whose combined bases equal the observed
genotype at every called position. Not-called positions constrain nothing, so every allele that
could sit there stays possible — a missing call is never read as reference. Phased heterozygous
calls (``|``, one phase set) are matched haplotype by haplotype; unphased ones allow any split, and
when several diplotypes fit, all are reported (e.g. TPMT *1/*3A versus *3B/*3C).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pipelines.genomics.definitions import AlleleDefinition, Gene
from pipelines.genomics.vcf import OTHER, Call

__all__ = ["GeneCall", "Status", "call_gene"]

Status = Literal["called", "ambiguous", "incomplete", "not_called", "no_match"]
Pair = tuple[AlleleDefinition, AlleleDefinition]


@dataclass(frozen=True)
class GeneCall:
    """The diplotypes that fit one sample's genotypes at one gene, and why there may be several."""

    gene: str
    status: Status
    diplotypes: tuple[Pair, ...]
    missing: tuple[tuple[str, str], ...]
    unexpected: tuple[str, ...]
    phased: bool
    unphased_het: tuple[str, ...]
    genotypes: dict[str, str]

    @property
    def names(self) -> list[str]:
        return [f"{a.name}/{b.name}" for a, b in self.diplotypes]


def _vector(allele: AlleleDefinition, gene: Gene) -> tuple[int, ...]:
    return tuple(1 if v.rsid in allele.variants else 0 for v in gene.variants)


def _is_phased(het: list[Call]) -> bool:
    """Heterozygous calls can be read haplotype by haplotype only if all are phased in one phase set."""
    return all(c.phased for c in het) and len({c.phase_set for c in het}) <= 1


def _unique_pairs(pairs: list[Pair]) -> tuple[Pair, ...]:
    """One representative per pair of allele names (CPIC sub-alleles share a name and function)."""
    seen: dict[tuple[str, str], Pair] = {}
    for a, b in pairs:
        first, second = (a, b) if a.order <= b.order else (b, a)
        seen.setdefault((first.name, second.name), (first, second))
    return tuple(sorted(seen.values(), key=lambda p: (p[0].order, p[1].order)))


def call_gene(gene: Gene, calls: Mapping[str, Call]) -> GeneCall:
    """Every diplotype of defined alleles consistent with ``calls`` (rsID → Call) at ``gene``."""
    observed = [calls[v.rsid] for v in gene.variants]
    codes = {i: c.codes for i, c in enumerate(observed) if c.codes is not None}
    called = list(codes)
    missing = tuple(
        (gene.variants[i].rsid, c.missing or "not called") for i, c in enumerate(observed) if c.codes is None
    )
    unexpected = tuple(gene.variants[i].rsid for i in called if OTHER in codes[i])
    het = [i for i in called if codes[i][0] != codes[i][1]]
    phased = len(het) >= 2 and _is_phased([observed[i] for i in het])
    genotypes = {gene.variants[i].rsid: observed[i].display for i in called}
    vectors = [(allele, _vector(allele, gene)) for allele in gene.alleles]

    pairs: list[Pair] = []
    if phased:
        haplotypes = [[codes[i][h] for i in called] for h in (0, 1)]
        fits = [[a for a, vec in vectors if [vec[i] for i in called] == hap] for hap in haplotypes]
        pairs = [(a, b) for a in fits[0] for b in fits[1]]
    else:
        genotype = {i: sorted(codes[i]) for i in called}
        for n, (a, va) in enumerate(vectors):
            for b, vb in vectors[n:]:
                if all(sorted((va[i], vb[i])) == g for i, g in genotype.items()):
                    pairs.append((a, b))
    diplotypes = _unique_pairs(pairs)

    status: Status
    if not called:
        status = "not_called"
    elif not diplotypes:
        status = "no_match"
    elif len(diplotypes) == 1:
        status = "called"
    else:
        status = "incomplete" if missing else "ambiguous"
    return GeneCall(
        gene=gene.symbol,
        status=status,
        diplotypes=diplotypes,
        missing=missing,
        unexpected=unexpected,
        phased=phased,
        unphased_het=tuple(gene.variants[i].rsid for i in het) if len(het) >= 2 and not phased else (),
        genotypes=genotypes,
    )
