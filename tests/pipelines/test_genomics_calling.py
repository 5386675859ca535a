"""Diplotype, phenotype and recommendation calls for genotypes written from the CPIC definitions."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.genomics.definitions import DATA_DIR, load_definitions
from pipelines.genomics.make_sample_vcf import expected_diplotypes, random_genotypes, write_vcf
from pipelines.genomics.pipeline import GenomicsPipeline

FIXTURE = Path(__file__).parents[1] / "data" / "genomics" / "pgx_fixture.vcf"


def call(tmp_path: Path, genotypes: dict[str, str], **write_kwargs) -> dict:
    """Run the pipeline on a one-sample VCF with ``genotypes`` (rsID → GT; others 0/0)."""
    path = write_vcf(tmp_path / "sample.vcf", {"S1": genotypes}, **write_kwargs)
    return GenomicsPipeline().run(path).data["samples"]["S1"]


def drug(sample: dict, guideline: str) -> dict:
    return next(r for r in sample["recommendations"] if r["guideline"] == guideline)


# CYP2C19 *1 and every allele below except *38 carry c.991A>G; *2 also carries c.332-23A>G.
STAR1 = {"rs3758581": "1/1"}
STAR2_HET = {**STAR1, "rs12769205": "0/1", "rs4244285": "0/1"}


@pytest.mark.parametrize(
    ("genotypes", "diplotype", "phenotype", "action"),
    [
        (STAR1, "*1/*1", "Normal Metabolizer", "standard"),
        ({}, "*38/*38", "Normal Metabolizer", "standard"),
        ({"rs3758581": "0/1"}, "*1/*38", "Normal Metabolizer", "standard"),
        ({**STAR1, "rs12769205": "1/1", "rs4244285": "1/1"}, "*2/*2", "Poor Metabolizer", "alternative"),
        ({**STAR2_HET, "rs4986893": "0/1"}, "*2/*3", "Poor Metabolizer", "alternative"),
        (STAR2_HET, "*1/*2", "Intermediate Metabolizer", "alternative"),
        ({**STAR1, "rs12248560": "0/1"}, "*1/*17", "Rapid Metabolizer", "standard"),
        ({**STAR1, "rs12248560": "1/1"}, "*17/*17", "Ultrarapid Metabolizer", "standard"),
        ({**STAR2_HET, "rs12248560": "0/1"}, "*2/*17", "Intermediate Metabolizer", "alternative"),
        ({**STAR1, "rs28399504": "0/1"}, "*1/*4", "Intermediate Metabolizer", "alternative"),
    ],
)
def test_cyp2c19_and_clopidogrel(tmp_path, genotypes, diplotype, phenotype, action):
    sample = call(tmp_path, genotypes)
    gene = sample["genes"]["CYP2C19"]
    assert (gene["status"], gene["diplotype"], gene["phenotype"]) == ("called", diplotype, phenotype)
    clopidogrel = drug(sample, "clopidogrel")
    assert clopidogrel["status"] == "determined" and clopidogrel["action"] == action
    if action == "alternative":
        assert "prasugrel or ticagrelor" in clopidogrel["recommendation"]


def test_cyp2c19_star4_with_star17_variant_is_star4(tmp_path):
    """CPIC *4.002 carries c.-806C>T too; unphased, *4 (with it) / *1 and *4 / *17 both fit."""
    gene = call(tmp_path, {"rs3758581": "1|1", "rs28399504": "0|1", "rs12248560": "0|1"})["genes"]["CYP2C19"]
    assert gene["diplotype"] == "*1/*4" and gene["phased"]
    unphased = call(tmp_path, {**STAR1, "rs28399504": "0/1", "rs12248560": "0/1"})["genes"]["CYP2C19"]
    assert unphased["status"] == "ambiguous"
    assert unphased["possible_diplotypes"] == ["*1/*4", "*4/*17"]
    assert unphased["phenotype"] == "Intermediate Metabolizer"  # both are one no-function allele


def test_unphased_two_hets_reports_phase_note(tmp_path):
    gene = call(tmp_path, {**STAR2_HET, "rs12248560": "0/1"})["genes"]["CYP2C19"]
    assert not gene["phased"]
    assert any("phase unknown at" in note for note in gene["notes"])


@pytest.mark.parametrize(
    ("genotypes", "status", "diplotypes", "phenotype"),
    [
        ({"rs1800460": "0|1", "rs1142345": "0|1"}, "called", ["*1/*3A"], "Intermediate Metabolizer"),
        ({"rs1800460": "1|0", "rs1142345": "0|1"}, "called", ["*3B/*3C"], "Poor Metabolizer"),
        ({"rs1800460": "1/1", "rs1142345": "1/1"}, "called", ["*3A/*3A"], "Poor Metabolizer"),
        ({"rs1800460": "0/1", "rs1142345": "1/1"}, "called", ["*3A/*3C"], "Poor Metabolizer"),
        ({"rs1800462": "0/1"}, "called", ["*1/*2"], "Intermediate Metabolizer"),
        ({"rs1800460": "0/1", "rs1142345": "0/1"}, "ambiguous", ["*1/*3A", "*3B/*3C"], "Indeterminate"),
    ],
)
def test_tpmt_star3a_and_phase(tmp_path, genotypes, status, diplotypes, phenotype):
    sample = call(tmp_path, genotypes)
    gene = sample["genes"]["TPMT"]
    assert (gene["status"], gene["possible_diplotypes"], gene["phenotype"]) == (status, diplotypes, phenotype)
    if status == "ambiguous":
        assert gene["diplotype"] is None
        assert gene["possible_phenotypes"] == ["Intermediate Metabolizer", "Poor Metabolizer"]
        for guideline in ("azathioprine", "mercaptopurine"):
            rec = drug(sample, guideline)
            assert rec["status"] == "ambiguous" and rec["action"] is None
            assert "if Intermediate Metabolizer:" in rec["recommendation"]
            assert "if Poor Metabolizer:" in rec["recommendation"]


@pytest.mark.parametrize(
    ("genotypes", "diplotype", "score", "phenotype", "action"),
    [
        ({}, "*1/*1", 2.0, "Normal Metabolizer", "standard"),
        ({"rs3918290": "0/1"}, "*1/*2A", 1.0, "Intermediate Metabolizer", "decrease"),
        ({"rs67376798": "0/1"}, "*1/c.2846A>T", 1.5, "Intermediate Metabolizer", "decrease"),
        ({"rs75017182": "1/1"}, "HapB3/HapB3", 1.0, "Intermediate Metabolizer", "decrease"),
        ({"rs3918290": "0/1", "rs67376798": "0/1"}, "*2A/c.2846A>T", 0.5, "Poor Metabolizer", "alternative"),
        ({"rs3918290": "1/1"}, "*2A/*2A", 0.0, "Poor Metabolizer", "alternative"),
    ],
)
def test_dpyd_activity_score_and_fluoropyrimidines(tmp_path, genotypes, diplotype, score, phenotype, action):
    sample = call(tmp_path, genotypes)
    gene = sample["genes"]["DPYD"]
    assert (gene["diplotype"], gene["activity_score"], gene["phenotype"]) == (diplotype, score, phenotype)
    rec = drug(sample, "fluoropyrimidines")
    assert rec["drugs"] == ["fluorouracil", "capecitabine"]
    assert rec["basis"] == f"{score:.1f}" and rec["action"] == action
    if genotypes == {"rs3918290": "0/1"}:
        assert "Reduce the starting dose by 50%" in rec["recommendation"]


def test_dpyd_unphased_variants_carry_cpic_trans_note(tmp_path):
    gene = call(tmp_path, {"rs3918290": "0/1", "rs67376798": "0/1"})["genes"]["DPYD"]
    assert any("in trans" in note for note in gene["notes"])


@pytest.mark.parametrize(
    ("genotypes", "diplotypes", "phenotype", "action"),
    [
        ({}, ["*1/*1"], "Normal Function", "standard"),
        ({"rs4149056": "0/1"}, ["*1/*5"], "Decreased Function", "alternative"),
        ({"rs4149056": "1/1"}, ["*5/*5"], "Poor Function", "alternative"),
        ({"rs2306283": "1/1"}, ["*37/*37"], "Normal Function", "standard"),
        ({"rs2306283": "0/1", "rs4149056": "0/1"}, ["*1/*15", "*5/*37"], "Decreased Function", "alternative"),
    ],
)
def test_slco1b1_and_simvastatin(tmp_path, genotypes, diplotypes, phenotype, action):
    sample = call(tmp_path, genotypes)
    gene = sample["genes"]["SLCO1B1"]
    assert (gene["possible_diplotypes"], gene["phenotype"]) == (diplotypes, phenotype)
    rec = drug(sample, "simvastatin")
    assert rec["status"] == "determined" and rec["action"] == action


@pytest.mark.parametrize(
    ("genotypes", "cyp2c9", "score", "dose"),
    [
        ({}, "*1/*1", 2.0, "5-7 mg/day"),
        ({"rs1057910": "0/1", "rs9923231": "0/1"}, "*1/*3", 1.0, "3-4 mg/day"),
        ({"rs1057910": "0/1", "rs9923231": "1/1"}, "*1/*3", 1.0, "0.5-2 mg/day"),  # issue 12 item 8's patient
        ({"rs1799853": "0/1", "rs1057910": "0/1", "rs9923231": "1/1"}, "*2/*3", 0.5, "0.5-2 mg/day"),
    ],
)
def test_cyp2c9_vkorc1_and_warfarin(tmp_path, genotypes, cyp2c9, score, dose):
    sample = call(tmp_path, genotypes)
    assert sample["genes"]["CYP2C9"]["diplotype"] == cyp2c9
    assert sample["genes"]["CYP2C9"]["activity_score"] == score
    rec = drug(sample, "warfarin")
    assert rec["status"] == "determined" and rec["genes"] == ["CYP2C9", "VKORC1"]
    assert dose in rec["recommendation"] and "pharmacogenetic algorithm" in rec["recommendation"]


def test_warfarin_outside_label_table_uses_cpic_fallback(tmp_path):
    sample = call(tmp_path, {"rs28371686": "0/1"})
    assert sample["genes"]["CYP2C9"]["diplotype"] == "*1/*5"
    rec = drug(sample, "warfarin")
    assert rec["status"] == "determined" and "15-30%" in rec["recommendation"]


def test_missing_record_is_reported_never_taken_as_reference(tmp_path):
    sample = call(tmp_path, STAR1, omit=["rs4986893"])
    gene = sample["genes"]["CYP2C19"]
    assert gene["missing"] == ["not called: rs4986893 (no VCF record)"]
    assert gene["status"] == "incomplete" and gene["diplotype"] is None
    assert gene["possible_diplotypes"] == ["*1/*1", "*1/*3", "*3/*3"]
    assert gene["phenotype"] == "Indeterminate"
    clopidogrel = drug(sample, "clopidogrel")
    assert clopidogrel["status"] == "incomplete" and clopidogrel["action"] is None
    assert "not called: rs4986893" in clopidogrel["recommendation"]
    assert "if Poor Metabolizer:" in clopidogrel["recommendation"]


def test_missing_genotype_is_reported(tmp_path):
    gene = call(tmp_path, {"rs3918290": "./."})["genes"]["DPYD"]
    assert gene["missing"] == ["not called: rs3918290 (missing genotype (./.))"]
    assert gene["possible_diplotypes"] == ["*1/*1", "*1/*2A", "*2A/*2A"]
    assert gene["activity_score"] is None and gene["phenotype"] == "Indeterminate"


def test_missing_position_that_cannot_change_the_phenotype(tmp_path):
    """*2 het with c.-806 not called: *1/*2 and *2/*17 are both Intermediate Metabolizer."""
    gene = call(tmp_path, STAR2_HET, omit=["rs12248560"])["genes"]["CYP2C19"]
    assert gene["possible_diplotypes"] == ["*1/*2", "*2/*17"]
    assert gene["phenotype"] == "Intermediate Metabolizer"
    assert gene["missing"] == ["not called: rs12248560 (no VCF record)"]


def test_gene_without_any_record_is_not_called(tmp_path):
    tpmt = ["rs1800462", "rs1800460", "rs1142345"]
    sample = call(tmp_path, {}, omit=tpmt)
    gene = sample["genes"]["TPMT"]
    assert gene["status"] == "not_called" and gene["possible_diplotypes"] == []
    assert len(gene["missing"]) == 3
    assert drug(sample, "azathioprine")["status"] == "indeterminate"


def test_unexpected_allele_matches_no_diplotype(tmp_path):
    """A multi-allelic site where the sample carries an ALT that defines no core allele."""
    path = write_vcf(tmp_path / "multi.vcf", {"S1": {}})
    text = path.read_text().replace("rs7900194\tG\tA\t.\tPASS\t.\tGT\t0/0", "rs7900194\tG\tA,T\t.\tPASS\t.\tGT\t0/2")
    path.write_text(text)
    gene = GenomicsPipeline().run(path).data["samples"]["S1"]["genes"]["CYP2C9"]
    assert gene["status"] == "no_match" and gene["phenotype"] == "Indeterminate"
    assert any("rs7900194" in note for note in gene["notes"])


def test_fixture_vcf_known_genotypes():
    data = GenomicsPipeline().run(FIXTURE).data
    assert data["build"] == "GRCh38" and not data["indexed"]
    pm, rm, dpyd, missing = (data["samples"][s]["genes"] for s in ("PGX_PM", "PGX_RM", "PGX_DPYD", "PGX_MISSING"))
    assert pm["CYP2C19"]["diplotype"] == "*2/*2" and pm["CYP2C19"]["phenotype"] == "Poor Metabolizer"
    assert pm["CYP2C9"]["diplotype"] == "*1/*3" and pm["VKORC1"]["diplotype"] == "c.-1639G/c.-1639A"
    assert rm["CYP2C19"]["phenotype"] == "Rapid Metabolizer"
    assert rm["TPMT"]["diplotype"] == "*1/*3A" and rm["TPMT"]["phased"]
    assert rm["SLCO1B1"]["diplotype"] == "*1/*5"
    assert dpyd["DPYD"]["diplotype"] == "*1/*2A" and dpyd["DPYD"]["activity_score"] == 1.0
    assert dpyd["TPMT"]["possible_diplotypes"] == ["*1/*3A", "*3B/*3C"]
    assert dpyd["SLCO1B1"]["phenotype"] == "Decreased Function"
    assert missing["CYP2C19"]["missing"] == ["not called: rs4244285 (missing genotype (./.))"]
    assert missing["DPYD"]["phenotype"] == "Indeterminate"


@pytest.mark.parametrize("phased", [True, False])
def test_random_synthetic_samples_recover_their_alleles(tmp_path, phased):
    genotypes, truth = random_genotypes(40, seed=7, phased=phased)
    path = write_vcf(tmp_path / "random.vcf.gz", genotypes)
    samples = GenomicsPipeline().run(path).data["samples"]
    for sample, genes in expected_diplotypes(truth).items():
        for gene, diplotype in genes.items():
            result = samples[sample]["genes"][gene]
            if phased:
                assert result["diplotype"] == diplotype, (sample, gene)
            else:
                assert diplotype in result["possible_diplotypes"], (sample, gene)


def test_definition_tables_are_cross_checked(tmp_path):
    """A phenotype spelled differently in the recommendation table fails at load time."""
    data = tmp_path / "data"
    shutil.copytree(DATA_DIR, data)
    path = data / "recommendations.json"
    original = '"Poor Metabolizer": {"text": "Avoid clopidogrel'
    path.write_text(path.read_text().replace(original, original.replace("Poor Metabolizer", "Poor metabolizer")))
    with pytest.raises(ValueError, match="not CYP2C19 phenotypes"):
        load_definitions(data)
