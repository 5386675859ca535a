"""The ``genomics`` sidecar: pharmacogenomic diplotypes, phenotypes and CPIC recommendations from a VCF.

read (``vcf``: genotypes at the core positions and unassessed variants in each gene, build checked
by ``genome_build``) → call (``diplotype``: star-allele pairs that fit) → interpret (``phenotype``:
CPIC phenotype and recommendation per drug) → encode (``data`` for JSON, SR report items, FHIR from
``fhir``). The clinical content is data (``data/*.tsv|json``, sources in ``data/README.md``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pipelines.base import Code, PipelineError, ReportItem, SidecarPipeline, SidecarResult
from pipelines.genomics.definitions import Definitions, load_definitions
from pipelines.genomics.diplotype import call_gene
from pipelines.genomics.fhir import sample_resources
from pipelines.genomics.phenotype import INDETERMINATE, DrugResult, GeneResult, interpret_sample
from pipelines.genomics.vcf import Call, Finding, VcfCalls, read_calls
from pipelines.registry import register

__all__ = ["GenomicsPipeline", "REPORT_TITLE"]

log = logging.getLogger(__name__)

REPORT_TITLE = Code("51969-4", "LN", "Genetic analysis report")
_GENOTYPE = Code("84413-4", "LN", "Genotype display name")


def _finding_data(finding: Finding) -> dict[str, Any]:
    return {"chrom": finding.chrom, "pos": finding.pos, "ref": finding.ref, "alt": finding.alt,
            "genotype": finding.genotype, "text": str(finding)}


def _gene_data(result: GeneResult) -> dict[str, Any]:
    call = result.call
    undecided = result.phenotype == INDETERMINATE and call.status not in ("not_called", "no_match", "not_assessable")
    return {
        "status": call.status,
        "diplotype": result.diplotype,
        "possible_diplotypes": result.possible_diplotypes,
        "phenotype": result.phenotype,
        "possible_phenotypes": list(result.phenotypes) if undecided else [],
        "activity_score": result.activity_score,
        "phased": call.phased,
        "genotypes": call.genotypes,
        "missing": result.not_called,
        "unassessed_variants": [_finding_data(f) for f in call.unassessed],
        "notes": list(result.notes),
    }


def _drug_data(drug: DrugResult) -> dict[str, Any]:
    g = drug.guideline
    return {
        "guideline": g.id,
        "drugs": [name for name, _ in g.drugs],
        "genes": list(g.genes),
        "status": drug.status,
        "basis": drug.basis,
        "recommendation": drug.text,
        "strength": drug.strength,
        "action": drug.action,
        "source": f"{g.guideline}. {g.citation}",
        "url": g.url,
        "note": g.note,
    }


def _id_seed(version: str, definitions: Definitions, patient_id: str | None, sample: str, build: str,
             calls: dict[str, Call], unassessed: dict[str, tuple[Finding, ...]]) -> str:
    """A digest of everything a sample's result depends on, for idempotent FHIR ids."""
    state = [version, definitions.version, patient_id, sample, build,
             sorted((rsid, c.display, c.missing) for rsid, c in calls.items()),
             sorted((gene, str(f), f.genotype) for gene, found in unassessed.items() for f in found)]
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()


@register
class GenomicsPipeline(SidecarPipeline):
    """Pharmacogenomics from a VCF/BCF: CYP2C19, CYP2C9, VKORC1, SLCO1B1, DPYD, TPMT (CPIC)."""

    name: ClassVar[str] = "genomics"
    version: ClassVar[str] = "1.1.0"
    description: ClassVar[str] = (
        "Call CPIC core star-allele diplotypes (CYP2C19, CYP2C9, VKORC1, SLCO1B1, DPYD, TPMT) from a "
        "VCF/BCF, map them to phenotypes and CPIC recommendations for clopidogrel, warfarin, "
        "simvastatin, fluoropyrimidines and thiopurines. Research use only."
    )

    def run(self, input_path: Path, patient_id: str | None = None, sample: str | None = None,
            build: str | None = None, **params: Any) -> SidecarResult:
        """Call every sample (or ``sample``) of ``input_path``; ``build`` is needed if the header has none."""
        if params:
            raise PipelineError(f"unknown genomics parameter(s): {', '.join(sorted(params))}")
        definitions = load_definitions()
        vcf = read_calls(Path(input_path), definitions, sample=sample, build=build)
        if patient_id and len(vcf.samples) > 1:
            raise PipelineError(
                f"{Path(input_path).name} has {len(vcf.samples)} samples: pass sample= to say which one is the patient"
            )
        issued = datetime.now(UTC)
        samples: dict[str, dict[str, Any]] = {}
        items: list[ReportItem] = []
        fhir: list[dict[str, Any]] = []
        actionable = 0
        for name in vcf.samples:
            calls, unassessed = vcf.calls[name], vcf.unassessed[name]
            gene_calls = {symbol: call_gene(gene, calls, unassessed.get(symbol, ()))
                          for symbol, gene in definitions.genes.items()}
            genes, drugs = interpret_sample(definitions, gene_calls, unassessed)
            samples[name] = {
                "genes": {symbol: _gene_data(r) for symbol, r in genes.items()},
                "recommendations": [_drug_data(d) for d in drugs],
            }
            actionable += sum(1 for d in drugs if d.status == "determined" and d.action != "standard")
            prefix = f"{name}: " if len(vcf.samples) > 1 else ""
            items += self._report_items(prefix, genes, drugs)
            fhir += sample_resources(
                sample=name, genes=genes, drugs=drugs, definitions=definitions, patient_id=patient_id,
                id_seed=_id_seed(self.version, definitions, patient_id, name, vcf.build, calls, unassessed),
                issued=issued,
                conclusion=self._conclusion(genes, drugs),
            )
        summary = self._summary(vcf, samples, actionable)
        log.info("genomics: %d sample(s), %d positions found, %d actionable recommendations",
                 len(vcf.samples), vcf.positions_found, actionable)
        data = {
            "build": vcf.build,
            "build_source": vcf.build_source,
            "indexed": vcf.indexed,
            "definitions_version": definitions.version,
            "positions_found": vcf.positions_found,
            "positions_total": sum(len(gene.variants) for gene in definitions.genes.values()),
            "warnings": vcf.warnings,
            "samples": samples,
        }
        return SidecarResult(self.name, self.version, summary, data, REPORT_TITLE, items, fhir)

    @staticmethod
    def _report_items(prefix: str, genes: dict[str, GeneResult], drugs: list[DrugResult]) -> list[ReportItem]:
        items = []
        for result in genes.values():
            text = result.describe()
            if result.not_called:
                text += "; " + "; ".join(result.not_called)
            items.append(ReportItem(_GENOTYPE, text=prefix + text))
        for drug in drugs:
            for name, rxnorm in drug.guideline.drugs:
                text = f"{prefix}{drug.text} [{drug.guideline.citation}]"
                items.append(ReportItem(Code(rxnorm, "RXNORM", name), text=text))
        return items

    @staticmethod
    def _conclusion(genes: dict[str, GeneResult], drugs: list[DrugResult]) -> str:
        def names(selected: list[DrugResult]) -> str:
            return ", ".join(n for d in selected for n, _ in d.guideline.drugs)

        actionable = [d for d in drugs if d.status == "determined" and d.action != "standard"]
        undetermined = [d for d in drugs if d.status != "determined"]
        parts = ["; ".join(r.describe() for r in genes.values())]
        parts.append(f"Actionable: {names(actionable)}" if actionable else "No actionable recommendation")
        if undetermined:
            parts.append(f"Not determined: {names(undetermined)}")
        return ". ".join(parts) + "."

    @staticmethod
    def _summary(vcf: VcfCalls, samples: dict[str, dict[str, Any]], actionable: int) -> str:
        if len(samples) == 1:
            genes = next(iter(samples.values()))["genes"]
            calls = "; ".join(f"{g} not assessable" if d["status"] == "not_assessable"
                              else f"{g} {d['diplotype'] or 'indeterminate'} ({d['phenotype']})"
                              for g, d in genes.items())
            return f"{calls}; {actionable} actionable recommendation(s) [{vcf.build}]"
        gene_results = [d for sample in samples.values() for d in sample["genes"].values()]
        determined = sum(1 for d in gene_results if d["phenotype"] != INDETERMINATE)
        return (f"{len(samples)} samples [{vcf.build}]: {determined}/{len(gene_results)} gene phenotypes determined, "
                f"{actionable} actionable recommendation(s)")
