"""FHIR R5 resources for one sample, modelled on the HL7 genomics-reporting IG (STU3).

Per sample: one genotype Observation per gene (LOINC 84413-4, gene studied 48018-6 as HGNC, the
CPIC phenotype as a component), one therapeutic-implication Observation per guideline (medication
assessed 51963-7 as RxNorm, the recommendation in ``note``), one Task per actionable recommendation
(the IG's MedicationRecommendation: intent ``proposal``, code from LOINC LL4049-4) and a
DiagnosticReport (LOINC 51969-4) that lists the Observations as results and the Tasks through the
IG's ``recommended-action`` extension.

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
_NAMESPACE = uuid.UUID("5f0b7a52-3c1e-5d7c-9a51-6b3f2c4e8d10")
_CATEGORIES = [
    CodeableConcept(coding=[Coding(system="http://terminology.hl7.org/CodeSystem/observation-category", code="laboratory")]),
    CodeableConcept(coding=[Coding(system="http://terminology.hl7.org/CodeSystem/v2-0074", code="GE", display="Genetics")]),
]


def _loinc(code: str, display: str) -> CodeableConcept:
    return CodeableConcept(coding=[Coding(system=LOINC, code=code, display=display)])


def _phenotype_value(phenotype: str, definitions: Definitions) -> CodeableConcept:
    answer = definitions.loinc_answers.get(phenotype)
    if answer is None:
        return CodeableConcept(text=phenotype)
    return CodeableConcept(coding=[Coding(system=LOINC, code=answer[0], display=answer[1])], text=phenotype)


def _genotype_observation(obs_id: str, result: GeneResult, definitions: Definitions, subject: Reference | None,
                          specimen: Reference) -> Observation:
    call = result.call
    components = [
        ObservationComponent(
            code=_loinc("48018-6", "Gene studied [ID]"),
            valueCodeableConcept=CodeableConcept(coding=[Coding(system=HGNC, code=result.gene.hgnc, display=result.gene.symbol)]),
        ),
    ]
    if result.phenotype in definitions.loinc_answers:
        phenotype_code = _loinc("53040-2", "Genetic variation's effect on drug metabolism")
    else:
        phenotype_code = CodeableConcept(text="Predicted phenotype (CPIC)")
    components.append(ObservationComponent(code=phenotype_code, valueCodeableConcept=_phenotype_value(result.phenotype, definitions)))
    if result.activity_score is not None:
        components.append(ObservationComponent(code=CodeableConcept(text="CPIC activity score"), valueQuantity=Quantity(value=result.activity_score)))
    notes = [*result.not_called, *result.notes]
    if call.genotypes:
        notes.append("Genotypes: " + ", ".join(f"{rsid} {gt}" for rsid, gt in call.genotypes.items()))
    value: dict[str, Any]
    if call.status in ("not_called", "no_match"):
        value = {"dataAbsentReason": CodeableConcept(coding=[Coding(
            system="http://terminology.hl7.org/CodeSystem/data-absent-reason", code="unknown", display="Unknown")],
            text=result.describe())}
    else:
        value = {"valueCodeableConcept": CodeableConcept(text=f"{result.gene.symbol} {result.diplotype or 'indeterminate (possible: ' + ', '.join(result.possible_diplotypes) + ')'}")}
    return Observation(
        id=obs_id, status="final", category=_CATEGORIES, code=_loinc("84413-4", "Genotype display name"),
        subject=subject, specimen=specimen, component=components,
        note=[Annotation(text=n) for n in notes] or None, **value,
    )


def _implication_observation(obs_id: str, drug: DrugResult, genes: dict[str, GeneResult], genotype_refs: dict[str, Reference],
                             definitions: Definitions, subject: Reference | None, specimen: Reference) -> Observation:
    g = drug.guideline
    implication = (_phenotype_value(genes[g.genes[0]].phenotype, definitions)
                   if g.key == "phenotype" and drug.status == "determined" else CodeableConcept(text=drug.basis))
    components = [ObservationComponent(code=CodeableConcept(coding=[Coding(system=TBD_CODES, code="therapeutic-implication")]),
                                       valueCodeableConcept=implication)]
    components += [
        ObservationComponent(code=_loinc("51963-7", "Medication assessed [ID]"),
                             valueCodeableConcept=CodeableConcept(coding=[Coding(system=RXNORM, code=rxnorm, display=name)]))
        for name, rxnorm in g.drugs
    ]
    strength = f" (CPIC strength: {drug.strength})" if drug.strength else ""
    notes = [drug.text + strength, f"{g.guideline}. {g.citation}. {g.url}"] + ([g.note] if g.note else [])
    return Observation(
        id=obs_id, status="final", category=_CATEGORIES,
        code=CodeableConcept(coding=[Coding(system=TBD_CODES, code="therapeutic-implication", display="Therapeutic Implication")]),
        subject=subject, specimen=specimen, component=components,
        derivedFrom=[genotype_refs[gene] for gene in g.genes], note=[Annotation(text=n) for n in notes],
    )


def sample_resources(*, sample: str, genes: dict[str, GeneResult], drugs: list[DrugResult], definitions: Definitions,
                     patient_id: str | None, id_seed: str, issued: datetime, conclusion: str) -> list[dict[str, Any]]:
    """The DiagnosticReport, Observations and Tasks of one sample, as JSON-able dicts."""

    def new_id(kind: str, name: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{id_seed}|{kind}|{name}"))

    subject = Reference(reference=f"Patient/{patient_id}") if patient_id else None
    specimen = Reference(display=f"VCF sample {sample}")
    resources: list[Any] = []
    genotype_refs: dict[str, Reference] = {}
    for symbol, result in genes.items():
        obs = _genotype_observation(new_id("genotype", symbol), result, definitions, subject, specimen)
        genotype_refs[symbol] = Reference(reference=f"Observation/{obs.id}", display=result.describe())
        resources.append(obs)
    results = list(genotype_refs.values())
    actions = []
    for drug in drugs:
        obs = _implication_observation(new_id("implication", drug.guideline.id), drug, genes, genotype_refs, definitions, subject, specimen)
        resources.append(obs)
        drug_names = ", ".join(name for name, _ in drug.guideline.drugs)
        results.append(Reference(reference=f"Observation/{obs.id}", display=f"{drug_names}: {drug.basis}"))
        if drug.status == "determined" and drug.action in definitions.actions:
            code, display = definitions.actions[drug.action]
            task = Task(
                id=new_id("task", drug.guideline.id), status="requested", intent="proposal",
                code=CodeableConcept(coding=[Coding(system=LOINC, code=code, display=display)], text=f"{display}: {drug_names}"),
                description=drug.text, authoredOn=issued,
                reason=[CodeableReference(reference=Reference(reference=f"Observation/{obs.id}"))],
                **({"for": subject} if subject else {}),
            )
            resources.append(task)
            actions.append(Extension(url=RECOMMENDED_ACTION, valueReference=Reference(reference=f"Task/{task.id}", display=task.code.text)))
    report = DiagnosticReport(
        id=new_id("report", sample), status="final", category=[_CATEGORIES[1]],
        code=_loinc("51969-4", "Genetic analysis report"), subject=subject, issued=issued,
        specimen=[specimen], result=results, conclusion=conclusion, extension=actions or None,
        note=[Annotation(text=f"Pharmacogenomic star-allele calling from VCF; definitions {definitions.version} "
                              "(CPIC core alleles, see pipelines/genomics/data/README.md). Not validated for clinical use.")],
    )
    return [r.model_dump(mode="json", exclude_none=True) for r in [report, *resources]]
