"""The genome-build check covers gVCF reference blocks, and what a file does not cover is never a call.

Issue 12 item 8: a GRCh37 gVCF whose header says GRCh38 was called *1/*1 in five genes because its
reference blocks span the GRCh38 positions and blocks skipped the REF check; the patient (CYP2C9
*1/*3, VKORC1 c.-1639 A/A) got warfarin 5-7 mg/day instead of 0.5-2 mg/day.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.base import PipelineError
from pipelines.genomics.make_sample_vcf import index_vcf, write_vcf
from pipelines.genomics.pipeline import GenomicsPipeline

# CYP2C9 *1/*3 and VKORC1 c.-1639 A/A; CYP2C19 *1/*1 (c.991G on both haplotypes); everything else
# reference. On GRCh37 the records of this patient are CYP2C9 c.1075A>C, VKORC1 c.-1639G>A and
# DPYD c.85T>C (GRCh37's reference carries *9A's G, so a non-carrier has a non-reference call).
WARFARIN_PATIENT = {"rs1057910": "0/1", "rs9923231": "1/1", "rs3758581": "1/1"}


def run(path: Path) -> dict:
    return GenomicsPipeline().run(path).data


def sample(data: dict) -> dict:
    return data["samples"]["S1"]


def warfarin(data: dict) -> dict:
    return next(r for r in sample(data)["recommendations"] if r["guideline"] == "warfarin")


def test_grch37_gvcf_labelled_grch38_is_not_assessable(tmp_path):
    path = write_vcf(tmp_path / "b37.g.vcf", {"S1": WARFARIN_PATIENT}, "GRCh37", header_build="GRCh38", gvcf=True)
    for candidate in (path, _indexed(path)):
        with pytest.raises(PipelineError, match="not assessable: 3 record.* probably on GRCh37, although GRCh38"):
            run(candidate)


def test_same_gvcf_labelled_grch37_gives_the_reduced_warfarin_dose(tmp_path):
    data = run(write_vcf(tmp_path / "b37.g.vcf", {"S1": WARFARIN_PATIENT}, "GRCh37", gvcf=True))
    genes = sample(data)["genes"]
    assert genes["CYP2C9"]["diplotype"] == "*1/*3" and genes["VKORC1"]["diplotype"] == "c.-1639A/c.-1639A"
    assert all(g["status"] == "called" and not g["missing"] for g in genes.values())
    assert genes["CYP2C19"]["diplotype"] == "*1/*1" and genes["DPYD"]["diplotype"] == "*1/*1"
    rec = warfarin(data)
    assert rec["status"] == "determined" and "0.5-2 mg/day" in rec["recommendation"]


def test_grch38_gvcf_calls_from_reference_blocks(tmp_path):
    data = run(write_vcf(tmp_path / "b38.g.vcf", {"S1": WARFARIN_PATIENT}, gvcf=True))
    genes = sample(data)["genes"]
    assert genes["CYP2C9"]["diplotype"] == "*1/*3" and genes["VKORC1"]["diplotype"] == "c.-1639A/c.-1639A"
    assert not data["warnings"] and "0.5-2 mg/day" in warfarin(data)["recommendation"]


def test_blocks_only_gvcf_cannot_confirm_its_build(tmp_path):
    """Nothing starts at a core position on either build: reference blocks are not taken as calls."""
    reference_on_grch37 = {"rs3758581": "1/1", "rs1801265": "1/1"}  # GRCh37 carries these bases
    path = write_vcf(tmp_path / "b37.g.vcf", {"S1": reference_on_grch37}, "GRCh37", header_build="GRCh38", gvcf=True)
    data = run(path)
    assert any("unconfirmed" in w for w in data["warnings"])
    genes = sample(data)["genes"]
    assert {g["status"] for g in genes.values()} == {"not_called"}
    assert "gVCF reference block only; no record confirms GRCh38" in genes["CYP2C9"]["missing"][0]
    assert warfarin(data)["status"] == "indeterminate" and warfarin(data)["action"] is None


def _as_blocks(path: Path, ref) -> Path:  # type: ignore[no-untyped-def]
    """Turn the records of a plain VCF into reference blocks, each from its record to the next one,
    with REF ``ref(record)``: a gVCF whose blocks start at the core positions."""
    lines = path.read_text().splitlines()
    header = [line for line in lines if line.startswith("##")]
    header.append('##INFO=<ID=END,Number=1,Type=Integer,Description="End of the reference block">')
    header += [line for line in lines if line.startswith("#CHROM")]
    records = [line.split("\t") for line in lines if not line.startswith("#")]
    body = []
    for f, after in zip(records, [*records[1:], None]):
        end = int(after[1]) - 1 if after and after[0] == f[0] else int(f[1]) + 1000
        body.append("\t".join([f[0], f[1], ".", ref(f), "<NON_REF>", ".", ".", f"END={end}", "GT", "0/0"]))
    path.write_text("\n".join(header + body) + "\n")
    return path


def test_reference_blocks_take_part_in_the_ref_check(tmp_path):
    """Blocks at every core position whose REF is not the GRCh38 base: the file is on another build."""
    swapped = {"A": "C", "C": "G", "G": "T", "T": "A"}
    path = _as_blocks(write_vcf(tmp_path / "bp.g.vcf", {"S1": {}}), lambda f: swapped[f[3]])
    with pytest.raises(PipelineError, match="not assessable: REF alleles at .* differ from GRCh38"):
        run(path)


def test_block_with_a_wrong_ref_at_a_core_position_is_not_a_call(tmp_path):
    def ref(f: list[str]) -> str:
        return "A" if f[1] == "94981301" else f[3]  # GRCh38 has C at CYP2C9 c.1080 (rs28371686)

    gene = sample(run(_as_blocks(write_vcf(tmp_path / "bp.g.vcf", {"S1": {}}), ref)))["genes"]["CYP2C9"]
    assert gene["missing"] == ["not called: rs28371686 (VCF REF A differs from GRCh38 REF C)"]
    assert gene["possible_diplotypes"] == ["*1/*1", "*1/*5", "*5/*5"]


def test_gvcf_gap_over_a_core_position_is_not_a_call(tmp_path):
    data = run(write_vcf(tmp_path / "g.vcf", {"S1": WARFARIN_PATIENT}, gvcf=True, omit=["rs1799853"]))
    gene = sample(data)["genes"]["CYP2C9"]
    assert gene["missing"] == ["not called: rs1799853 (no VCF record)"]
    assert gene["diplotype"] is None and gene["possible_diplotypes"] == ["*1/*3", "*2/*3"]
    rec = warfarin(data)  # both possible diplotypes have the same expected dose with VKORC1 A/A
    assert rec["status"] == "determined" and "0.5-2 mg/day" in rec["recommendation"]
    assert rec["basis"] == "*1/*3 + c.-1639A/c.-1639A or *2/*3 + c.-1639A/c.-1639A"


def test_gvcf_block_without_coverage_is_not_a_call(tmp_path):
    """GATK writes uncovered sequence as 0/0 blocks with DP 0 (and GQ 0): that is no call."""
    patient = {**WARFARIN_PATIENT, "rs9923231": "0/0"}  # VKORC1 is read from the block over chr16
    path = write_vcf(tmp_path / "g.vcf", {"S1": patient}, gvcf=True)
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("##FORMAT=<ID=GT,"):
            lines += ['##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
                      '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">']
        elif not line.startswith("#"):
            fields = line.split("\t")
            uncovered = fields[0] == "chr16" and fields[4] == "<NON_REF>"
            line = "\t".join([*fields[:8], "GT:DP:GQ", fields[9] + (":0:0" if uncovered else ":30:99")])
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    data = run(path)
    vkorc1 = sample(data)["genes"]["VKORC1"]
    assert vkorc1["status"] == "not_called" and vkorc1["missing"] == ["not called: rs9923231 (no coverage (DP=0))"]
    assert sample(data)["genes"]["CYP2C9"]["diplotype"] == "*1/*3"
    assert warfarin(data)["status"] == "indeterminate"


def _indexed(path: Path) -> Path:
    from cyvcf2 import VCF, Writer

    out = path.with_name(path.name + ".gz")
    reader = VCF(str(path))
    writer = Writer(str(out), reader, mode="wz")
    for record in reader:
        writer.write_record(record)
    writer.close()
    reader.close()
    index_vcf(out)
    return out
