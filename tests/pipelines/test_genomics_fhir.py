"""FHIR resources, SR report items and summary of the genomics sidecar."""

from __future__ import annotations

import pytest
from fhir.resources import get_fhir_model_class

from pipelines.base import Code
from pipelines.genomics.make_sample_vcf import write_vcf
from pipelines.genomics.pipeline import REPORT_TITLE, GenomicsPipeline

POOR_CYP2C19 = {"rs3758581": "1/1", "rs12769205": "1/1", "rs4244285": "1/1", "rs3918290": "0/1"}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    path = write_vcf(tmp_path_factory.mktemp("fhir") / "p.vcf", {"S1": POOR_CYP2C19})
    return GenomicsPipeline().run(path, patient_id="pat-1")


def by_type(resources: list[dict], kind: str) -> list[dict]:
    return [r for r in resources if r["resourceType"] == kind]


def test_resources_validate_as_fhir_models(result):
    for resource in result.fhir:
        model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        assert model.model_dump(mode="json", exclude_none=True) == resource


def test_resource_set_and_references(result):
    report, = by_type(result.fhir, "DiagnosticReport")
    observations = by_type(result.fhir, "Observation")
    tasks = by_type(result.fhir, "Task")
    assert len(observations) == 6 + 6  # one genotype per gene, one implication per guideline
    # clopidogrel (PM: alternative) and fluoropyrimidines (DPYD *1/*2A: decrease) are actionable
    assert sorted(t["code"]["coding"][0]["code"] for t in tasks) == ["LA26421-0", "LA26422-8"]
    ids = {f"{r['resourceType']}/{r['id']}" for r in result.fhir}
    assert {ref["reference"] for ref in report["result"]} == {f"Observation/{o['id']}" for o in observations}
    assert {e["valueReference"]["reference"] for e in report["extension"]} == {f"Task/{t['id']}" for t in tasks}
    for task in tasks:
        assert task["reason"][0]["reference"]["reference"] in ids
        assert task["for"] == {"reference": "Patient/pat-1"} and task["intent"] == "proposal"
    for obs in observations:
        assert obs["subject"] == {"reference": "Patient/pat-1"}
        for ref in obs.get("derivedFrom", []):
            assert ref["reference"] in ids
    assert report["code"]["coding"][0]["code"] == "51969-4" and report["subject"] == {"reference": "Patient/pat-1"}


def test_genotype_observation_is_genomics_reporting_style(result):
    genotype = next(o for o in by_type(result.fhir, "Observation")
                    if o["code"]["coding"][0]["code"] == "84413-4" and "CYP2C19" in o["valueCodeableConcept"]["text"])
    assert genotype["valueCodeableConcept"]["text"] == "CYP2C19 *2/*2"
    components = {c["code"].get("coding", [{}])[0].get("code"): c for c in genotype["component"]}
    assert components["48018-6"]["valueCodeableConcept"]["coding"][0]["code"] == "HGNC:2621"
    assert components["53040-2"]["valueCodeableConcept"]["coding"][0]["code"] == "LA9657-3"  # Poor metabolizer


def test_implication_cites_guideline_and_drug(result):
    def codes(resource: dict) -> set[str]:
        return {c["valueCodeableConcept"].get("coding", [{}])[0].get("code") for c in resource["component"]}

    observations = by_type(result.fhir, "Observation")
    implication = next(o for o in observations if o["code"]["coding"][0]["code"] == "therapeutic-implication"
                       and "32968" in codes(o))
    notes = " ".join(n["text"] for n in implication["note"])
    assert "prasugrel or ticagrelor" in notes and "Lee CR et al." in notes


def test_ids_are_stable_across_runs(tmp_path, result):
    path = write_vcf(tmp_path / "p.vcf", {"S1": POOR_CYP2C19})
    again = GenomicsPipeline().run(path, patient_id="pat-1")
    assert [r["id"] for r in again.fhir] == [r["id"] for r in result.fhir]
    other = GenomicsPipeline().run(write_vcf(tmp_path / "q.vcf", {"S1": {}}), patient_id="pat-1")
    assert not {r["id"] for r in other.fhir} & {r["id"] for r in result.fhir}


def test_without_patient_no_subject(tmp_path):
    res = GenomicsPipeline().run(write_vcf(tmp_path / "p.vcf", {"S1": POOR_CYP2C19}))
    assert all("subject" not in r and "for" not in r for r in res.fhir)


def test_not_called_gene_has_data_absent_reason(tmp_path):
    path = write_vcf(tmp_path / "p.vcf", {"S1": {}}, omit=["rs1800462", "rs1800460", "rs1142345"])
    res = GenomicsPipeline().run(path)
    tpmt = next(o for o in by_type(res.fhir, "Observation") if "dataAbsentReason" in o)
    assert "TPMT: not called" in tpmt["dataAbsentReason"]["text"]
    assert any("not called: rs1800460" in n["text"] for n in tpmt["note"])


def test_report_items_and_summary(result):
    assert result.report_title == REPORT_TITLE == Code("51969-4", "LN", "Genetic analysis report")
    genotype_items = [i for i in result.report_items if i.name.value == "84413-4"]
    drug_items = [i for i in result.report_items if i.name.scheme == "RXNORM"]
    assert len(genotype_items) == 6 and len(drug_items) == 7  # fluoropyrimidines cover two drugs
    assert any(i.text.startswith("CYP2C19 *2/*2: Poor Metabolizer") for i in genotype_items)
    clopidogrel = next(i for i in drug_items if i.name == Code("32968", "RXNORM", "clopidogrel"))
    assert "prasugrel" in clopidogrel.text
    assert result.summary.startswith("CYP2C19 *2/*2 (Poor Metabolizer)")
    assert "2 actionable recommendation(s) [GRCh38]" in result.summary
    assert (result.pipeline, result.version) == ("genomics", GenomicsPipeline.version)


def test_not_assessable_gene_and_recommendation_say_why(tmp_path):
    """A variant the node does not assess (CYP2C19 *9, c.431G>A) reaches FHIR and the SR as the reason."""
    star9 = ("10", 94775489, "G", "A", {"S1": "0/1"})
    res = GenomicsPipeline().run(write_vcf(tmp_path / "u.vcf", {"S1": POOR_CYP2C19}, extra=[star9]), patient_id="p")
    for resource in res.fhir:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    reason = "CYP2C19: not assessable: unassessed variant at chr10:94775489 G>A"
    genotype = next(o for o in by_type(res.fhir, "Observation") if "dataAbsentReason" in o)
    assert genotype["dataAbsentReason"]["text"] == reason
    assert "Unassessed variant: chr10:94775489 G>A (genotype 0/1)" in [n["text"] for n in genotype["note"]]
    clopidogrel = next(o for o in by_type(res.fhir, "Observation") if any(
        c.get("valueCodeableConcept", {}).get("coding", [{}])[0].get("code") == "32968" for c in o["component"]))
    assert clopidogrel["component"][0]["valueCodeableConcept"] == {"text": "not assessable"}
    assert clopidogrel["note"][0]["text"].startswith("No recommendation: CYP2C19 not assessable: unassessed variant")
    tasks = by_type(res.fhir, "Task")  # only fluoropyrimidines (DPYD *1/*2A) is proposed
    assert [t["code"]["coding"][0]["code"] for t in tasks] == ["LA26422-8"]
    report, = by_type(res.fhir, "DiagnosticReport")
    assert reason in report["conclusion"] and "Not determined: clopidogrel" in report["conclusion"]
    assert any(i.text == reason for i in res.report_items if i.name.value == "84413-4")
    sr_clopidogrel = next(i for i in res.report_items if i.name == Code("32968", "RXNORM", "clopidogrel"))
    assert sr_clopidogrel.text.startswith("No recommendation: CYP2C19 not assessable: unassessed variant at chr10")
    assert res.summary.startswith("CYP2C19 not assessable;")
