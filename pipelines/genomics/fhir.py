"""FHIR R5 resources for one sample, modelled on the HL7 genomics-reporting IG (STU3).

Per sample: one genotype Observation per gene (LOINC 84413-4, gene studied 48018-6 as HGNC, the
CPIC phenotype as a component), one therapeutic-implication Observation per guideline (medication
assessed 51963-7 as RxNorm, the recommendation in ``note``), one Task per actionable recommendation
(the IG's MedicationRecommendation: intent ``proposal``, code from LOINC LL4049-4) and a
DiagnosticReport (LOINC 51969-4) that lists the Observations as results and the Tasks through the
IG's ``recommended-action`` extension.

A gene the node cannot assess (a variant it does not assess lies in the gene) gets a genotype
Observation with a ``dataAbsentReason`` whose text gives the variant, and its implication
Observations say "not assessable" with the reason instead of a recommendation, and have no Task.

Why Task and not MedicationStatement: a MedicationStatement asserts that a patient takes a drug;
a recommendation is a proposal, which is what the IG uses Task for. Standard-dose recommendations
produce no Task (nothing is proposed); their text stays in the implication Observation.

The resources are built and validated with fhir.resources (R5, like the rest of the node). The IG
targets R4, so where R5 differs the R5 element is used (``Task.reason`` for ``reasonReference``);
no ``meta.profile`` is claimed because the resources are not validated against the IG profiles.
Ids are UUIDv5 of the sample's inputs, so re-running a job re-creates the same resources.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.annotation import Annotation
from fhir.resources.codeableconcept import CodeableConcept
from fhir.resources.codeablereference import CodeableReference
from fhir.resources.coding import Coding
from fhir.resources.diagnosticreport import DiagnosticReport
from fhir.resources.extension import Extension
from fhir.resources.observation import Observation, ObservationComponent
from fhir.resources.quantity import Quantity
from fhir.resources.reference import Reference
from fhir.resources.task import Task

from pipelines.genomics.definitions import Definitions
from pipelines.genomics.phenotype import DrugResult, GeneResult

__all__ = ["sample_resources", "LOINC", "RXNORM", "HGNC"]

LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
HGNC = "http://www.genenames.org"
TBD_CODES = "http://hl7.org/fhir/uv/genomics-reporting/CodeSystem/tbd-codes-cs"
RECOMMENDED_ACTION = "http://hl7.org/fhir/uv/genomics-reporting/StructureDefinition/recommended-action"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
_NAMESPACE = uuid.UUID("5f0b7a52-3c1e-5d7c-9a51-6b3f2c4e8d10")
_CATEGORIES = [
    CodeableConcept(coding=[Coding(system="http://terminology.hl7.org/CodeSystem/observation-category",
                                   code="laboratory")]),
    CodeableConcept(coding=[Coding(system="http://terminology.hl7.org/CodeSystem/v2-0074", code="GE",
                                   display="Genetics")]),
]


def _loinc(code: str, display: str) -> CodeableConcept:
    return CodeableConcept(coding=[Coding(system=LOINC, code=code, display=display)])


def _coded(system: str, code: str, display: str | None = None, text: str | None = None) -> CodeableConcept:
    return CodeableConcept(coding=[Coding(system=system, code=code, display=display)], text=text)


@dataclass(frozen=True)
class _Context:
    """What every resource of one sample shares."""

    definitions: Definitions
    subject: Reference | None
    specimen: Reference
    id_seed: str

    def new_id(self, kind: str, name: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{self.id_seed}|{kind}|{name}"))

    def phenotype_value(self, phenotype: str) -> CodeableConcept:
        answer = self.definitions.loinc_answers.get(phenotype)
        return _coded(LOINC, answer[0], answer[1], phenotype) if answer else CodeableConcept(text=phenotype)


def _genotype_observation(ctx: _Context, result: GeneResult) -> Observation:
    call = result.call
    if result.phenotype in ctx.definitions.loinc_answers:
        phenotype_code = _loinc("53040-2", "Genetic variation's effect on drug metabolism")
    else:
        phenotype_code = CodeableConcept(text="Predicted phenotype (CPIC)")
    components = [
        ObservationComponent(code=_loinc("48018-6", "Gene studied [ID]"),
                             valueCodeableConcept=_coded(HGNC, result.gene.hgnc, result.gene.symbol)),
        ObservationComponent(code=phenotype_code, valueCodeableConcept=ctx.phenotype_value(result.phenotype)),
    ]
    if result.activity_score is not None:
        components.append(ObservationComponent(code=CodeableConcept(text="CPIC activity score"),
                                               valueQuantity=Quantity(value=result.activity_score)))
    notes = [*result.not_called, *(f"Unassessed variant: {f} (genotype {f.genotype})" for f in call.unassessed),
             *result.notes]
    if call.genotypes:
        notes.append("Genotypes: " + ", ".join(f"{rsid} {gt}" for rsid, gt in call.genotypes.items()))
    value: dict[str, Any]
    if call.status in ("not_called", "no_match", "not_assessable"):
        value = {"dataAbsentReason": _coded(DATA_ABSENT, "unknown", "Unknown", result.describe())}
    else:
        diplotype = result.diplotype or f"indeterminate (possible: {', '.join(result.possible_diplotypes)})"
        value = {"valueCodeableConcept": CodeableConcept(text=f"{result.gene.symbol} {diplotype}")}
    return Observation(
        id=ctx.new_id("genotype", result.gene.symbol), status="final", category=_CATEGORIES,
        code=_loinc("84413-4", "Genotype display name"), subject=ctx.subject, specimen=ctx.specimen,
        component=components, note=[Annotation(text=n) for n in notes] or None, **value,
    )


def _implication_observation(ctx: _Context, drug: DrugResult, genes: dict[str, GeneResult],
                             genotype_refs: dict[str, Reference]) -> Observation:
    g = drug.guideline
    if g.key == "phenotype" and drug.status == "determined":
        implication = ctx.phenotype_value(genes[g.genes[0]].phenotype)
    else:
        implication = CodeableConcept(text=drug.basis)
    components = [
        ObservationComponent(code=_coded(TBD_CODES, "therapeutic-implication"), valueCodeableConcept=implication),
        *(ObservationComponent(code=_loinc("51963-7", "Medication assessed [ID]"),
                               valueCodeableConcept=_coded(RXNORM, rxnorm, name)) for name, rxnorm in g.drugs),
    ]
    strength = f" (CPIC strength: {drug.strength})" if drug.strength else ""
    notes = [drug.text + strength, f"{g.guideline}. {g.citation}. {g.url}"] + ([g.note] if g.note else [])
    return Observation(
        id=ctx.new_id("implication", g.id), status="final", category=_CATEGORIES,
        code=_coded(TBD_CODES, "therapeutic-implication", "Therapeutic Implication"),
        subject=ctx.subject, specimen=ctx.specimen, component=components,
        derivedFrom=[genotype_refs[gene] for gene in g.genes], note=[Annotation(text=n) for n in notes],
    )


def _task(ctx: _Context, drug: DrugResult, implication: Observation, issued: datetime) -> Task:
    code, display = ctx.definitions.actions[drug.action]  # type: ignore[index]
    drug_names = ", ".join(name for name, _ in drug.guideline.drugs)
    return Task(
        id=ctx.new_id("task", drug.guideline.id), status="requested", intent="proposal",
        code=_coded(LOINC, code, display, f"{display}: {drug_names}"), description=drug.text, authoredOn=issued,
        reason=[CodeableReference(reference=Reference(reference=f"Observation/{implication.id}"))],
        **({"for": ctx.subject} if ctx.subject else {}),
    )


def sample_resources(*, sample: str, genes: dict[str, GeneResult], drugs: list[DrugResult], definitions: Definitions,
                     patient_id: str | None, id_seed: str, issued: datetime, conclusion: str) -> list[dict[str, Any]]:
    """The DiagnosticReport, Observations and Tasks of one sample, as JSON-able dicts."""
    ctx = _Context(definitions, Reference(reference=f"Patient/{patient_id}") if patient_id else None,
                   Reference(display=f"VCF sample {sample}"), id_seed)
    resources: list[Observation | Task] = []
    genotype_refs: dict[str, Reference] = {}
    for symbol, result in genes.items():
        obs = _genotype_observation(ctx, result)
        genotype_refs[symbol] = Reference(reference=f"Observation/{obs.id}", display=result.describe())
        resources.append(obs)
    results = list(genotype_refs.values())
    actions = []
    for drug in drugs:
        obs = _implication_observation(ctx, drug, genes, genotype_refs)
        resources.append(obs)
        drug_names = ", ".join(name for name, _ in drug.guideline.drugs)
        results.append(Reference(reference=f"Observation/{obs.id}", display=f"{drug_names}: {drug.basis}"))
        if drug.status == "determined" and drug.action in definitions.actions:
            task = _task(ctx, drug, obs, issued)
            resources.append(task)
            actions.append(Extension(url=RECOMMENDED_ACTION,
                                     valueReference=Reference(reference=f"Task/{task.id}", display=task.code.text)))
    report = DiagnosticReport(
        id=ctx.new_id("report", sample), status="final", category=[_CATEGORIES[1]],
        code=_loinc("51969-4", "Genetic analysis report"), subject=ctx.subject, issued=issued,
        specimen=[ctx.specimen], result=results, conclusion=conclusion, extension=actions or None,
        note=[Annotation(text=f"Pharmacogenomic star-allele calling from VCF; definitions {definitions.version} (CPIC "
                              "core alleles, see pipelines/genomics/data/README.md). Not validated for clinical use.")],
    )
    return [r.model_dump(mode="json", exclude_none=True) for r in [report, *resources]]
