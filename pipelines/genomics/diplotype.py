"""Star-allele diplotypes from the genotypes at a gene's core positions.

A diplotype is a pair of defined alleles (``alleles.tsv``) whose combined bases equal the observed
genotype at every called position. Not-called positions constrain nothing, so every allele that
could sit there stays possible — a missing call is never read as reference. Phased heterozygous
calls (``|``, one phase set) are matched haplotype by haplotype; unphased ones allow any split, and
when several diplotypes fit, all are reported (e.g. TPMT *1/*3A versus *3B/*3C).

A non-reference call elsewhere in the gene (a :class:`~pipelines.genomics.vcf.Finding`) makes the
gene ``not_assessable`` whatever the core positions show: the allele it belongs to is not defined
here (DPYD c.1898delC, CYP2C19 *9, …), so a diplotype of defined alleles could be wrong.

Only alleles whose defining bases are all present (or not called) can be part of a diplotype, so
the pairs tried are few even for DPYD's 82 alleles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pipelines.genomics.definitions import AlleleDefinition, Gene
from pipelines.genomics.vcf import ALT, OTHER, Call, Finding

__all__ = ["GeneCall", "Status", "call_gene"]

Status = Literal["called", "ambiguous", "incomplete", "not_called", "no_match", "not_assessable"]
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
    unassessed: tuple[Finding, ...] = ()

    @property
    def names(self) -> list[str]:
        return [f"{a.name}/{b.name}" for a, b in self.diplotypes]


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


def _pairs(gene: Gene, codes: dict[int, tuple[int, int]], phased: bool) -> list[Pair]:
    """Pairs of alleles whose defining bases add up to ``codes`` (index → allele codes) where called."""
    if any(OTHER in c for c in codes.values()):
        return []
    called = frozenset(codes)
    present = {i for i, c in codes.items() if ALT in c}
    allowed = present | (set(range(len(gene.variants))) - called)
    candidates = [(a, a.indices & called) for a in gene.alleles if a.indices <= allowed]
    if phased:
        haplotypes = [frozenset(i for i, c in codes.items() if c[h] == ALT) for h in (0, 1)]
        fits = [[a for a, seen in candidates if seen == hap] for hap in haplotypes]
        return [(a, b) for a in fits[0] for b in fits[1]]
    both = frozenset(i for i, c in codes.items() if c == (ALT, ALT))
    one = frozenset(i for i, c in codes.items() if c.count(ALT) == 1)
    return [(a, b) for n, (a, sa) in enumerate(candidates) for b, sb in candidates[n:]
            if sa & sb == both and sa ^ sb == one]


def call_gene(gene: Gene, calls: Mapping[str, Call], unassessed: Sequence[Finding] = ()) -> GeneCall:
    """Every diplotype of defined alleles consistent with ``calls`` (rsID → Call) at ``gene``.

    ``unassessed`` are the sample's non-reference calls elsewhere in the gene's region.
    """
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
    diplotypes = _unique_pairs(_pairs(gene, codes, phased))

    status: Status
    if unassessed:
        status = "not_assessable"
    elif not called:
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
        unassessed=tuple(unassessed),
    )
