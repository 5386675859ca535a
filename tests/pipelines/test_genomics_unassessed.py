"""Variants the node does not assess make their gene, and every recommendation on it, not assessable.

Issue 12 item 9: DPYD c.1679T>G (*13) with c.1156G>T (*12) was reported as activity score 1.0,
"reduce the dose by 50%"; CPIC gives c.1156G>T activity 0 (avoid fluoropyrimidines).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.genomics.make_sample_vcf import ExtraRecord, index_vcf, write_vcf
from pipelines.genomics.pipeline import GenomicsPipeline

STAR1 = {"rs3758581": "1/1"}  # CYP2C19 *1/*1
CYP2C19_STAR9 = ("10", 94775489, "G", "A", {"S1": "0/1"})  # c.431G>A, *9 (decreased function), not assessed


def run(tmp_path: Path, genotypes: dict[str, str], extra: list[ExtraRecord] = (), name: str = "s.vcf",
        **kwargs) -> dict:
    path = write_vcf(tmp_path / name, {"S1": genotypes}, extra=extra, **kwargs)
    if name.endswith(".gz"):
        index_vcf(path)
    return GenomicsPipeline().run(path).data["samples"]["S1"]


def drug(sample: dict, guideline: str) -> dict:
    return next(r for r in sample["recommendations"] if r["guideline"] == guideline)


def test_dpyd_star13_with_star12_is_poor_metabolizer(tmp_path):
    sample = run(tmp_path, {**STAR1, "rs55886062": "0/1", "rs78060119": "0/1"})
    dpyd = sample["genes"]["DPYD"]
    assert (dpyd["diplotype"], dpyd["activity_score"], dpyd["phenotype"]) == ("*13/*12", 0.0, "Poor Metabolizer")
    rec = drug(sample, "fluoropyrimidines")
    assert rec["basis"] == "0.0" and rec["action"] == "alternative"
    assert rec["recommendation"].startswith("Avoid 5-fluorouracil")


@pytest.mark.parametrize(("genotypes", "diplotype", "score"), [
    ({"rs1801265": "0/1"}, "*1/*9A", 2.0),  # c.85T>C, normal function
    ({"rs115232898": "0/1"}, "*1/c.557A>G", 1.5),
    ({"rs75017182": "0/1", "rs56038477": "0/1"}, "*1/HapB3", 1.5),  # HapB3 with its c.1236G>A
    ({"rs1801159": "0/1", "rs72549307": "0/1"}, "c.632A>G/*5", 1.0),
])
def test_dpyd_cpic_variants_are_assessed(tmp_path, genotypes, diplotype, score):
    dpyd = run(tmp_path, {**STAR1, **genotypes})["genes"]["DPYD"]
    assert (dpyd["status"], dpyd["diplotype"], dpyd["activity_score"]) == ("called", diplotype, score)


@pytest.mark.parametrize("name", ["s.vcf", "s.vcf.gz"])  # scanned and read by region queries
def test_unassessed_variant_in_cyp2c19_makes_it_not_assessable(tmp_path, name):
    sample = run(tmp_path, STAR1, [CYP2C19_STAR9], name)
    gene = sample["genes"]["CYP2C19"]
    assert (gene["status"], gene["diplotype"], gene["phenotype"]) == ("not_assessable", None, "Indeterminate")
    assert [f["text"] for f in gene["unassessed_variants"]] == ["chr10:94775489 G>A"]
    assert gene["unassessed_variants"][0]["genotype"] == "0/1"
    assert "the assessed positions alone fit *1/*1" in gene["notes"]
    clopidogrel = drug(sample, "clopidogrel")
    assert clopidogrel["status"] == "not_assessable" and clopidogrel["action"] is None
    assert clopidogrel["recommendation"] == (
        "No recommendation: CYP2C19 not assessable: unassessed variant at chr10:94775489 G>A.")
    assert sample["genes"]["CYP2C9"]["status"] == "called"
    assert drug(sample, "warfarin")["status"] == "determined"


def test_reference_call_elsewhere_in_the_gene_is_not_a_finding(tmp_path):
    homozygous_reference = ("10", 94775489, "G", "A", {"S1": "0/0"})
    assert run(tmp_path, STAR1, [homozygous_reference])["genes"]["CYP2C19"]["diplotype"] == "*1/*1"


def test_only_the_carrier_of_a_multi_sample_file_is_not_assessable(tmp_path):
    path = write_vcf(tmp_path / "two.vcf", {"A": STAR1, "B": STAR1},
                     extra=[("10", 94775489, "G", "A", {"A": "0/1", "B": "0/0"})])
    samples = GenomicsPipeline().run(path).data["samples"]
    assert samples["A"]["genes"]["CYP2C19"]["status"] == "not_assessable"
    assert samples["B"]["genes"]["CYP2C19"]["diplotype"] == "*1/*1"


@pytest.mark.parametrize(("extra", "gene", "text"), [
    (("1", 97450065, "TG", "T", {"S1": "0/1"}), "DPYD", "chr1:97450065 TG>T"),  # c.1898delC (*3)
    (("1", 97915000, "C", "<DEL>", {"S1": "0/1"}), "DPYD", "chr1:97915000 C><DEL>"),  # an exon deletion
    (("6", 18130687, "T", "G", {"S1": "0/1"}), "TPMT", "chr6:18130687 T>G"),  # *41, split from the core record
    (("10", 94781855, "GTGAGA", "G", {"S1": "0/1"}), "CYP2C19", "chr10:94781855 GTGAGA>G"),  # over c.681
])
def test_indels_structural_and_other_alleles_are_unassessed(tmp_path, extra, gene, text):
    sample = run(tmp_path, STAR1, [extra])
    result = sample["genes"][gene]
    assert result["status"] == "not_assessable" and [f["text"] for f in result["unassessed_variants"]] == [text]


@pytest.mark.parametrize(("extra", "guidelines", "gene"), [
    (("19", 15879621, "C", "T", {"S1": "0/1"}), ["warfarin"], "CYP4F2"),  # CYP4F2*3
    (("13", 48045719, "C", "T", {"S1": "0/1"}), ["azathioprine", "mercaptopurine"], "NUDT15"),  # NUDT15*3
])
def test_variant_in_an_uncalled_gene_withholds_its_drugs(tmp_path, extra, guidelines, gene):
    sample = run(tmp_path, STAR1, [extra])
    for guideline in guidelines:
        rec = drug(sample, guideline)
        assert rec["status"] == "not_assessable" and rec["action"] is None
        assert f"{gene} (not called by this node): unassessed variant at chr{extra[0]}:{extra[1]} C>T" in rec[
            "recommendation"]
    assert all(g["status"] == "called" for g in sample["genes"].values())
    assert drug(sample, "clopidogrel")["status"] == "determined"
