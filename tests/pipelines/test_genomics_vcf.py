"""VCF/BCF input: indexes, builds, gVCF blocks, phase sets, sample selection and input errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from pipelines import registry
from pipelines.base import PipelineError
from pipelines.genomics.definitions import load_definitions
from pipelines.genomics.make_sample_vcf import index_vcf, random_genotypes, write_vcf
from pipelines.genomics.pipeline import GenomicsPipeline

KNOWN = {
    "A": {"rs3758581": "1/1", "rs12769205": "1/1", "rs4244285": "1/1", "rs1057910": "0/1", "rs9923231": "0/1",
          "rs3918290": "0/1"},
    "B": {"rs3758581": "1/1", "rs12248560": "0/1", "rs1800460": "0|1", "rs1142345": "0|1", "rs4149056": "0/1"},
}


def diplotypes(data: dict) -> dict[str, dict[str, str | None]]:
    return {s: {g: r["diplotype"] for g, r in v["genes"].items()} for s, v in data["samples"].items()}


def run(path: Path, **kwargs) -> dict:
    return GenomicsPipeline().run(path, **kwargs).data


@pytest.fixture(scope="module")
def plain_result(tmp_path_factory) -> dict:
    return run(write_vcf(tmp_path_factory.mktemp("plain") / "known.vcf", KNOWN))


def test_registered():
    assert registry.get("genomics") is GenomicsPipeline


@pytest.mark.parametrize(
    ("name", "csi", "index_name"),
    [
        ("known.vcf.gz", False, "known.vcf.gz.tbi"),
        ("known.vcf.gz", True, "known.vcf.gz.csi"),
        ("known.bcf", False, "known.bcf.csi"),
    ],
)
def test_indexed_input_uses_region_queries_and_matches_plain(tmp_path, plain_result, name, csi, index_name):
    path = write_vcf(tmp_path / name, KNOWN, background=2000)
    assert index_vcf(path, csi=csi).name == index_name
    data = run(path)
    assert data["indexed"] is True
    assert diplotypes(data) == diplotypes(plain_result)
    assert data["samples"]["A"]["genes"]["CYP2C19"]["diplotype"] == "*2/*2"


def test_unindexed_bgzip_is_scanned(tmp_path, plain_result):
    data = run(write_vcf(tmp_path / "known.vcf.gz", KNOWN, background=500))
    assert data["indexed"] is False and diplotypes(data) == diplotypes(plain_result)


def test_contigs_without_chr_prefix(tmp_path, plain_result):
    path = write_vcf(tmp_path / "nochr.vcf.gz", KNOWN, chr_prefix=False)
    index_vcf(path)
    assert diplotypes(run(path)) == diplotypes(plain_result)


def test_grch37_input(tmp_path, plain_result):
    data = run(write_vcf(tmp_path / "b37.vcf", KNOWN, "GRCh37"))
    assert data["build"] == "GRCh37" and "header" in data["build_source"]
    assert diplotypes(data) == diplotypes(plain_result)


def test_thirty_sample_indexed_vcf(tmp_path):
    genotypes, _ = random_genotypes(30, seed=3, missing_rate=0.02)
    path = write_vcf(tmp_path / "cohort.vcf.gz", genotypes, background=5000)
    index_vcf(path)
    result = GenomicsPipeline().run(path)
    assert len(result.data["samples"]) == 30 and result.data["positions_found"] == result.data["positions_total"]
    assert sum(1 for r in result.fhir if r["resourceType"] == "DiagnosticReport") == 30
    assert result.summary.startswith("30 samples [GRCh38]")
    assert all(item.text.startswith("SYN") for item in result.report_items)


def test_sample_selection(tmp_path):
    path = write_vcf(tmp_path / "known.vcf", KNOWN)
    data = run(path, sample="B")
    assert list(data["samples"]) == ["B"]
    assert data["samples"]["B"]["genes"]["TPMT"]["diplotype"] == "*1/*3A"


def test_build_from_parameter_when_header_has_none(tmp_path):
    path = write_vcf(tmp_path / "nobuild.vcf", KNOWN, declare_build=False)
    with pytest.raises(PipelineError, match="declares no genome build"):
        run(path)
    data = run(path, build="hg38")
    assert (data["build"], data["build_source"]) == ("GRCh38", "parameter")
    assert data["samples"]["A"]["genes"]["CYP2C19"]["diplotype"] == "*2/*2"


def test_wrong_build_parameter(tmp_path):
    path = write_vcf(tmp_path / "b37.vcf", KNOWN, "GRCh37")
    with pytest.raises(PipelineError, match="mismatch: VCF header declares GRCh37 .* build=GRCh38"):
        run(path, build="GRCh38")
    with pytest.raises(PipelineError, match="unsupported genome build 'hg18'"):
        run(path, build="hg18")


def test_undeclared_grch37_file_run_as_grch38_is_not_assessable(tmp_path):
    """Its variant records sit at the GRCh37 positions of the core variants, none at the GRCh38 ones."""
    path = write_vcf(tmp_path / "b37.vcf", KNOWN, "GRCh37", declare_build=False)
    with pytest.raises(PipelineError, match="not assessable: .* on GRCh37, although GRCh38 comes from the parameter"):
        run(path, build="GRCh38")


def test_vcf_without_the_genes_finds_nothing_and_says_so(tmp_path):
    everything = [v.rsid for g in load_definitions().genes.values() for v in g.variants]
    data = run(write_vcf(tmp_path / "other.vcf", KNOWN, omit=everything, background=200))
    assert data["positions_found"] == 0
    assert any("check the genome build" in w for w in data["warnings"])
    assert data["samples"]["A"]["genes"]["CYP2C19"]["status"] == "not_called"


def test_ref_mismatch_means_wrong_build(tmp_path):
    path = write_vcf(tmp_path / "swapped.vcf", KNOWN, declare_build=False)
    swapped = {"A": "C", "C": "G", "G": "T", "T": "A"}
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            fields = line.split("\t")
            fields[3] = swapped[fields[3]]
            line = "\t".join(fields)
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PipelineError, match="differ from GRCh38"):
        run(path, build="GRCh38")


@pytest.mark.parametrize(
    ("header_lines", "message"),
    [
        (["##reference=GRCh37", "##contig=<ID=chr10,length=133797422>"], "conflicting genome builds"),
        (["##reference=file:///refs/hg18.fa"], "only GRCh37 and GRCh38 are supported"),
    ],
)
def test_header_build_errors(tmp_path, header_lines, message):
    path = write_vcf(tmp_path / "h.vcf", KNOWN, declare_build=False)
    text = path.read_text().replace("##fileformat=VCFv4.2\n", "##fileformat=VCFv4.2\n" + "\n".join(header_lines) + "\n")
    path.write_text(text)
    with pytest.raises(PipelineError, match=message):
        run(path)


def test_contig_assembly_declares_build(tmp_path):
    path = write_vcf(tmp_path / "asm.vcf", KNOWN, declare_build=False)
    path.write_text(path.read_text().replace("##contig=<ID=chr10>", "##contig=<ID=chr10,assembly=GRCh38.p13>"))
    assert run(path)["build_source"] == "header contig assembly"


def test_gvcf_reference_block_is_a_reference_call(tmp_path):
    genotypes = {"rs3758581": "1/1", "rs12769205": "0/1", "rs4244285": "0/1"}
    cyp2c19 = [v.rsid for v in load_definitions().genes["CYP2C19"].variants if v.rsid not in genotypes]
    path = write_vcf(tmp_path / "g.vcf", {"S1": genotypes}, omit=cyp2c19)
    lines = path.read_text().splitlines()
    lines.insert(lines.index(next(line for line in lines if line.startswith("##FORMAT"))),
                 '##INFO=<ID=END,Number=1,Type=Integer,Description="End of reference block">')
    block = "chr10\t94760000\t.\tC\t<NON_REF>\t.\tPASS\tEND=94860000\tGT\t0/0"
    first_chr10 = next(i for i, line in enumerate(lines) if line.startswith("chr10\t"))
    lines.insert(first_chr10, block)
    path.write_text("\n".join(lines) + "\n")
    for candidate in (path, _bgzip_indexed(path)):
        gene = run(candidate)["samples"]["S1"]["genes"]["CYP2C19"]
        assert (gene["status"], gene["diplotype"], gene["missing"]) == ("called", "*1/*2", [])


def _bgzip_indexed(path: Path) -> Path:
    from cyvcf2 import VCF, Writer

    out = path.with_suffix(".vcf.gz")
    reader = VCF(str(path))
    writer = Writer(str(out), reader, mode="wz")
    for record in reader:
        writer.write_record(record)
    writer.close()
    reader.close()
    index_vcf(out)
    return out


def test_different_phase_sets_are_not_combined(tmp_path):
    path = write_vcf(tmp_path / "ps.vcf", {"S1": {"rs1800460": "0|1", "rs1142345": "0|1"}})
    text = path.read_text().replace(
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        '##FORMAT=<ID=PS,Number=1,Type=Integer,Description="Phase set">',
    )
    lines = []
    for line in text.splitlines():
        if "\trs1800460\t" in line or "\trs1142345\t" in line:
            ps = "100" if "rs1800460" in line else "200"
            line = line.replace("\tGT\t0|1", f"\tGT:PS\t0|1:{ps}")
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    gene = run(path)["samples"]["S1"]["genes"]["TPMT"]
    assert gene["status"] == "ambiguous" and not gene["phased"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"hello world\nnot a vcf\n", "not a readable VCF/BCF"),
        (b"", "not a readable VCF/BCF"),
        (
            b"##fileformat=VCFv4.2\n##reference=GRCh38\n##contig=<ID=chr10>\n"
            b'##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            b"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\n"
            b"chr10\tnot-a-position\trs4244285\tG\tA\t.\tPASS\t.\tGT\t0/1\n",
            "malformed VCF record",
        ),
        (
            b"##fileformat=VCFv4.2\n##reference=GRCh38\n##contig=<ID=chr10>\n"
            b"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
            b"chr10\t94781859\trs4244285\tG\tA\t.\tPASS\t.\n",
            "no sample columns",
        ),
    ],
)
def test_malformed_input(tmp_path, content, message):
    path = tmp_path / "bad.vcf"
    path.write_bytes(content)
    with pytest.raises(PipelineError, match=message):
        run(path)


def test_truncated_bgzip(tmp_path):
    path = write_vcf(tmp_path / "t.vcf.gz", KNOWN, background=3000)
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(PipelineError, match="malformed VCF record"):
        run(cut)


def test_plain_gzip_is_scanned(tmp_path, plain_result):
    """A gzip (not BGZF) VCF cannot be indexed but is still read."""
    plain = write_vcf(tmp_path / "known.vcf", KNOWN)
    gz = tmp_path / "known.vcf.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert diplotypes(run(gz)) == diplotypes(plain_result)


def test_input_errors(tmp_path):
    path = write_vcf(tmp_path / "known.vcf", KNOWN)
    with pytest.raises(PipelineError, match="sample 'C' not found"):
        run(path, sample="C")
    with pytest.raises(PipelineError, match="pass sample="):
        GenomicsPipeline().run(path, patient_id="p1")
    with pytest.raises(PipelineError, match="unknown genomics parameter"):
        GenomicsPipeline().run(path, threshold=3)
    with pytest.raises(PipelineError, match="VCF not found"):
        run(tmp_path / "absent.vcf")
