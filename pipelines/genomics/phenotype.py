"""Diplotype → CPIC phenotype → drug recommendation, keeping every ambiguity visible.

When several diplotypes fit, the phenotype is reported only if all of them give the same one
(e.g. SLCO1B1 *1/*15 and *5/*37 are both Decreased Function); a recommendation likewise only if all
possible keys lead to the same text. Otherwise the result says what is possible, never a guess.

A gene with a variant the node does not assess is "not assessable", and so is every recommendation
that depends on it — including a guideline's ``checked_genes`` (CYP4F2 for warfarin), which are not
called, only searched for such variants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Literal

from pipelines.genomics.definitions import Definitions, Gene, Guideline, Recommendation
from pipelines.genomics.diplotype import GeneCall
from pipelines.genomics.vcf import Finding

__all__ = ["INDETERMINATE", "NOT_ASSESSABLE", "GeneResult", "DrugResult", "unassessed_reason", "interpret_gene",
           "recommend", "interpret_sample"]

INDETERMINATE = "Indeterminate"
NOT_ASSESSABLE = "not assessable"
_NO_KEY = ("not_called", "no_match", "not_assessable")


def unassessed_reason(findings: Sequence[Finding]) -> str:
    """E.g. 'unassessed variant at chr10:94775489 G>A'."""
    return f"unassessed variant{'s' if len(findings) > 1 else ''} at {', '.join(str(f) for f in findings)}"


@dataclass(frozen=True)
class GeneResult:
    """A gene's call with its phenotype(s), activity score(s) and the notes a reader needs."""

    gene: Gene
    call: GeneCall
    phenotypes: tuple[str, ...]
    activity_scores: tuple[float | None, ...]
    notes: tuple[str, ...]

    @property
    def diplotype(self) -> str | None:
        return self.call.names[0] if self.call.status == "called" else None

    @property
    def possible_diplotypes(self) -> list[str]:
        return [] if self.call.status in ("not_called", "not_assessable") else self.call.names

    @property
    def phenotype(self) -> str:
        return self.phenotypes[0] if len(self.phenotypes) == 1 else INDETERMINATE

    @property
    def activity_score(self) -> float | None:
        return self.activity_scores[0] if len(set(self.activity_scores)) == 1 else None

    @property
    def not_called(self) -> list[str]:
        return [f"not called: {rsid} ({reason})" for rsid, reason in self.call.missing]

    def describe(self) -> str:
        """One line for reports, e.g. 'CYP2C19 *1/*2: Intermediate Metabolizer'."""
        if self.call.status == "not_assessable":
            return f"{self.gene.symbol}: {NOT_ASSESSABLE}: {unassessed_reason(self.call.unassessed)}"
        if self.call.status == "not_called":
            return f"{self.gene.symbol}: not called (no genotype at any defining position)"
        if self.call.status == "no_match":
            return f"{self.gene.symbol}: indeterminate (genotypes match no defined diplotype)"
        diplotype = self.diplotype or "indeterminate, possible " + ", ".join(self.possible_diplotypes)
        phenotype = self.phenotype
        if phenotype == INDETERMINATE and len(self.phenotypes) > 1:
            phenotype = f"{INDETERMINATE} (possible: {', '.join(self.phenotypes)})"
        if self.activity_score is not None:
            phenotype += f", activity score {self.activity_score:.1f}"
        return f"{self.gene.symbol} {diplotype}: {phenotype}"


@dataclass(frozen=True)
class DrugResult:
    """A guideline's recommendation for one sample."""

    guideline: Guideline
    status: Literal["determined", "ambiguous", "incomplete", "indeterminate", "not_assessable"]
    basis: str
    text: str
    strength: str | None
    action: str | None


def interpret_gene(gene: Gene, call: GeneCall) -> GeneResult:
    notes: list[str] = []
    if call.status in _NO_KEY:
        phenotypes: tuple[str, ...] = (INDETERMINATE,)
        scores: tuple[float | None, ...] = (None,)
        if call.status == "not_assessable" and call.diplotypes:
            notes.append(f"the assessed positions alone fit {', '.join(call.names)}")
    else:
        results = [gene.phenotype_for(a, b) for a, b in call.diplotypes]
        phenotypes = tuple(dict.fromkeys(p for p, _ in results))
        scores = tuple(dict.fromkeys(s for _, s in results))
    if call.unexpected:
        notes.append(f"allele other than the defining REF/ALT at {', '.join(call.unexpected)}")
    if call.unphased_het:
        fitting = ", ".join(call.names) or "none"
        notes.append(
            f"phase unknown at {', '.join(call.unphased_het)}; diplotypes of defined alleles that fit: {fitting}"
        )
        if gene.unphased_note:
            notes.append(gene.unphased_note)
    if call.missing and len(phenotypes) == 1 and phenotypes[0] != INDETERMINATE:
        notes.append("phenotype is the same for every allele possible at the not-called positions")
    return GeneResult(gene, call, phenotypes, scores, tuple(notes))


def _keys(guideline: Guideline, genes: dict[str, GeneResult]) -> list[str] | None:
    """Every lookup key the sample may have, or None when a gene gives no usable key."""
    results = [genes[g] for g in guideline.genes]
    if any(r.call.status in _NO_KEY for r in results):
        return None
    if guideline.key == "phenotype":
        return list(results[0].phenotypes)
    if guideline.key == "activity_score":
        scores = results[0].activity_scores
        return None if None in scores else [f"{s:.1f}" for s in scores]
    return [" + ".join(combo) for combo in product(*(r.call.names for r in results))]


def _why_indeterminate(guideline: Guideline, genes: dict[str, GeneResult]) -> str:
    parts = []
    for symbol in guideline.genes:
        result = genes[symbol]
        if result.call.missing and result.call.status != "called":
            parts.append(f"{symbol} {'; '.join(result.not_called)}")
        elif result.phenotype == INDETERMINATE:
            parts.append(f"{symbol} {result.call.status.replace('_', ' ')}")
    return "; ".join(parts) or "genotype not in the guideline table"


def _not_assessable(guideline: Guideline, genes: dict[str, GeneResult],
                    unassessed: Mapping[str, Sequence[Finding]]) -> DrugResult | None:
    reasons = [f"{g} {NOT_ASSESSABLE}: {unassessed_reason(genes[g].call.unassessed)}" for g in guideline.genes
               if genes[g].call.status == "not_assessable"]
    reasons += [f"{g} (not called by this node): {unassessed_reason(unassessed[g])}"
                for g in guideline.checked_genes if unassessed.get(g)]
    if not reasons:
        return None
    return DrugResult(guideline, "not_assessable", NOT_ASSESSABLE,
                      f"No recommendation: {'; '.join(reasons)}.", None, None)


def recommend(guideline: Guideline, genes: dict[str, GeneResult],
              unassessed: Mapping[str, Sequence[Finding]] | None = None) -> DrugResult:
    """The recommendation of ``guideline`` for a sample's gene results.

    ``unassessed`` holds the sample's findings per gene region, read for ``guideline.checked_genes``.
    """
    withheld = _not_assessable(guideline, genes, unassessed or {})
    if withheld:
        return withheld
    keys = _keys(guideline, genes)
    table: dict[str, Recommendation | None] = {}
    for key in keys or []:
        table[key] = guideline.recommendations.get(key, guideline.fallback)
    if keys is None or any(rec is None for rec in table.values()):
        reason = _why_indeterminate(guideline, genes)
        return DrugResult(guideline, "indeterminate", ", ".join(keys or []) or INDETERMINATE,
                          f"No recommendation: {reason}.", None, None)
    recs = {key: rec for key, rec in table.items() if rec is not None}
    prefix = f"{guideline.preamble} " if guideline.preamble else ""
    if len(set(recs.values())) == 1:
        rec = next(iter(recs.values()))
        return DrugResult(guideline, "determined", " or ".join(recs), prefix + rec.text, rec.strength, rec.action)
    options = " | ".join(f"if {key}: {rec.text}" for key, rec in recs.items())
    incomplete = [genes[g] for g in guideline.genes if genes[g].call.status == "incomplete"]
    if incomplete:
        missing = "; ".join(m for r in incomplete for m in r.not_called)
        reason = f"Genotype incomplete ({missing}); the recommendation depends on the alleles there."
    else:
        reason = "Genotype ambiguous (phase unknown); the recommendation depends on the true diplotype."
    return DrugResult(guideline, "incomplete" if incomplete else "ambiguous", " or ".join(recs),
                      f"{reason} {prefix}{options}", None, None)


def interpret_sample(definitions: Definitions, gene_calls: dict[str, GeneCall],
                     unassessed: Mapping[str, Sequence[Finding]] | None = None,
                     ) -> tuple[dict[str, GeneResult], list[DrugResult]]:
    """Gene results and one DrugResult per guideline for one sample (``unassessed``: findings per gene)."""
    genes = {symbol: interpret_gene(definitions.genes[symbol], call) for symbol, call in gene_calls.items()}
    return genes, [recommend(g, genes, unassessed) for g in definitions.guidelines]
