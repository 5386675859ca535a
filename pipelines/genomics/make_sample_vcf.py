"""Write synthetic pharmacogenomic VCFs (no patient data) for tests, demos and benchmarks.

Genotypes at the core positions come from random pairs of defined star alleles (or are given
explicitly), so every sample has a known expected diplotype. ``.vcf`` is written as text,
``.vcf.gz`` BGZF-compressed and ``.bcf`` as BCF, all through cyvcf2; ``--index`` adds a tabix
(.tbi, or .csi with ``--csi``; always .csi for BCF) index built by the htslib that cyvcf2 ships,
so neither pysam nor the ``tabix`` command is needed.

Genotypes count the *defining* allele (``1``); the writer turns them into the build's REF/ALT, so
the same genotypes give the same diplotypes on GRCh37 and GRCh38 even where a build's reference
carries the variant (CYP2C19 c.991A>G, DPYD c.85T>C on GRCh37). ``gvcf=True`` writes a gVCF:
records only where a sample is not homozygous reference, reference blocks everywhere else. A
block's REF is the base at its start where that is a core position and ``N`` elsewhere: no
reference sequence is shipped, and the node cannot check those bases either.

    python -m pipelines.genomics.make_sample_vcf out.vcf.gz --samples 30 --index --background 20000
"""

from __future__ import annotations

import argparse
import ctypes
import random
from collections.abc import Iterable, Mapping
from pathlib import Path

import cyvcf2.cyvcf2 as _cyvcf2_ext
from cyvcf2 import Writer

from pipelines.genomics.definitions import BUILDS, AlleleDefinition, Definitions, Variant, load_definitions
from pipelines.genomics.genome_build import CONTIG_LENGTHS

__all__ = ["ExtraRecord", "write_vcf", "random_genotypes", "index_vcf", "expected_diplotypes"]

_REFERENCE_ALLELE_WEIGHT = 0.6
_SWAP = str.maketrans("01", "10")
# (chromosome without "chr", position, REF, ALT, sample -> GT): a record beside the core positions.
ExtraRecord = tuple[str, int, str, str, Mapping[str, str]]


def _header(samples: list[str], build: str | None, chr_prefix: bool, contig_lengths: bool, gvcf: bool) -> str:
    lines = ["##fileformat=VCFv4.2", "##source=dicom-node pipelines.genomics.make_sample_vcf (synthetic)"]
    if build:
        lines.append(f"##reference={build}")
    for chrom, lengths in CONTIG_LENGTHS.items():
        name = f"chr{chrom}" if chr_prefix else chrom
        length = f",length={lengths[BUILDS.index(build)]}" if contig_lengths and build else ""
        lines.append(f"##contig=<ID={name}{length}>")
    if gvcf:
        lines += ['##ALT=<ID=NON_REF,Description="Any allele other than REF">',
                  '##INFO=<ID=END,Number=1,Type=Integer,Description="End of the reference block">']
    lines += [
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#" + "\t".join(["CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]),
    ]
    return "\n".join(lines) + "\n"


def _in_region(definitions: Definitions, chrom: str, pos: int) -> bool:
    return any(r.chrom == chrom and r.contains(b, pos) for r in definitions.regions.values() for b in BUILDS)


def _background(n: int, rng: random.Random, build: str, samples: int, definitions: Definitions,
                skip: set[tuple[str, int]]) -> list[tuple[str, int, str]]:
    """Random biallelic SNVs on the same chromosomes, outside the gene regions, so an index has
    something to skip over (inside a region they would be unassessed variants)."""
    records = []
    chroms = list(CONTIG_LENGTHS)
    while len(records) < n:
        chrom = rng.choice(chroms)
        pos = rng.randrange(1_000_000, CONTIG_LENGTHS[chrom][BUILDS.index(build)] - 1_000_000)
        if (chrom, pos) in skip or _in_region(definitions, chrom, pos):
            continue
        ref, alt = rng.sample("ACGT", 2)
        gts = "\t".join(rng.choice(("0/0", "0/0", "0/1", "1/1")) for _ in range(samples))
        records.append((chrom, pos, f".\t{ref}\t{alt}\t.\tPASS\t.\tGT\t{gts}"))
        skip.add((chrom, pos))
    return records


def _build_genotypes(v: Variant, build: str, genotypes: list[str]) -> list[str]:
    """Genotypes counting the defining allele, as GT against ``build``'s REF (the other base is ALT)."""
    if v.genome_ref(build) == v.ref:
        return genotypes
    return [gt.translate(_SWAP) for gt in genotypes]  # the build's reference carries the defining base


def _blocks(records: list[tuple[str, int, str]], gaps: set[tuple[str, int]], samples: int,
            known: dict[tuple[str, int], str]) -> list[tuple[str, int, str]]:
    """Reference blocks over every position of each chromosome that has no record and is not a gap."""
    taken: dict[str, list[int]] = {chrom: [] for chrom in CONTIG_LENGTHS}
    for chrom, pos, _ in records:
        taken[chrom].append(pos)
    for chrom, pos in gaps:
        taken[chrom].append(pos)
    gts = "\t".join(["0/0"] * samples)
    blocks = []
    for chrom, occupied in taken.items():
        start = 1
        for stop in [*sorted(occupied), min(CONTIG_LENGTHS[chrom]) + 1]:  # within either build's contig
            if stop > start:
                ref = known.get((chrom, start), "N")
                blocks.append((chrom, start, f".\t{ref}\t<NON_REF>\t.\t.\tEND={stop - 1}\tGT\t{gts}"))
            start = stop + 1
    return blocks


def write_vcf(
    path: Path,
    genotypes: Mapping[str, Mapping[str, str]],
    build: str = "GRCh38",
    *,
    declare_build: bool = True,
    header_build: str | None = None,
    omit: Iterable[str] = (),
    extra: Iterable[ExtraRecord] = (),
    gvcf: bool = False,
    chr_prefix: bool = True,
    background: int = 0,
    seed: int = 0,
) -> Path:
    """Write ``genotypes`` (sample → rsID → GT such as "0/1", "1|0", "./."; 1 = defining allele).

    Records are at the positions of ``build``. Every core position is written (0/0 where a sample
    has no entry) except those in ``omit``, which get no record at all (in a gVCF: no block either).
    ``extra`` adds records such as variants the node does not assess. ``declare_build=False``
    writes a header without any build evidence; ``header_build`` declares another build than the
    records are on (a mislabelled file).
    """
    if gvcf and background:
        raise ValueError("background records are not written into a gVCF")
    definitions = load_definitions()
    samples = list(genotypes)
    omitted = set(omit)
    variants: list[Variant] = [v for g in definitions.genes.values() for v in g.variants if v.rsid not in omitted]
    records = []
    for v in variants:
        gts = _build_genotypes(v, build, [genotypes[s].get(v.rsid, "0/0") for s in samples])
        if gvcf and all(set(gt) <= set("0/|") for gt in gts):
            continue  # homozygous reference everywhere: inside a reference block
        alts = f"{v.genome_alt(build)},<NON_REF>" if gvcf else v.genome_alt(build)
        records.append((v.chrom, v.position(build),
                        f"{v.rsid}\t{v.genome_ref(build)}\t{alts}\t.\tPASS\t.\tGT\t" + "\t".join(gts)))
    for chrom, pos, ref, alt, extra_gts in extra:
        columns = "\t".join(extra_gts.get(s, "0/0") for s in samples)
        records.append((chrom, pos, f".\t{ref}\t{alt}\t.\tPASS\t.\tGT\t{columns}"))
    if gvcf:
        every = [v for g in definitions.genes.values() for v in g.variants]
        known = {(v.chrom, v.position(build)): v.genome_ref(build) for v in every}
        gaps = {(v.chrom, v.position(build)) for v in every if v.rsid in omitted}
        records += _blocks(records, gaps, len(samples), known)
    rng = random.Random(seed)
    records += _background(background, rng, build, len(samples), definitions, {(r[0], r[1]) for r in records})
    order = {chrom: i for i, chrom in enumerate(CONTIG_LENGTHS)}
    records.sort(key=lambda r: (order[r[0]], r[1]))
    declared = (header_build or build) if declare_build else None
    header = _header(samples, declared, chr_prefix, declare_build, gvcf)
    name = str(path)
    mode = "wb" if name.endswith(".bcf") else "wz" if name.endswith((".gz", ".bgz")) else "w"
    writer = Writer.from_string(name, header, mode=mode)
    try:
        for chrom, pos, rest in records:
            contig = f"chr{chrom}" if chr_prefix else chrom
            writer.write_record(writer.variant_from_string(f"{contig}\t{pos}\t{rest}"))
    finally:
        writer.close()
    return path


def index_vcf(path: Path, csi: bool = False) -> Path:
    """Build a .tbi (or .csi) index next to a BGZF VCF or BCF with htslib's ``bcf_index_build3``.

    cyvcf2's extension module carries htslib and exports its C API; loading it with ctypes gives
    the same indexer ``bcftools index``/``tabix`` use, without pysam or the tabix binary.
    """
    csi = csi or str(path).endswith(".bcf")
    build_index = ctypes.CDLL(_cyvcf2_ext.__file__).bcf_index_build3
    build_index.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    build_index.restype = ctypes.c_int
    status = build_index(str(path).encode(), None, 14 if csi else 0, 0)
    if status != 0:
        raise RuntimeError(f"htslib could not index {path} (status {status}); is it BGZF-compressed and sorted?")
    return path.with_name(path.name + (".csi" if csi else ".tbi"))


def _weighted_allele(rng: random.Random, alleles: tuple[AlleleDefinition, ...]) -> AlleleDefinition:
    if rng.random() < _REFERENCE_ALLELE_WEIGHT:
        return next(a for a in alleles if not a.variants)
    return rng.choice([a for a in alleles if a.variants])


def random_genotypes(n_samples: int, seed: int = 0, phased: bool = False, missing_rate: float = 0.0
                     ) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, tuple[str, str]]]]:
    """Random genotypes and the allele pair each sample was built from (sample → gene → names)."""
    rng = random.Random(seed)
    definitions = load_definitions()
    genotypes: dict[str, dict[str, str]] = {}
    truth: dict[str, dict[str, tuple[str, str]]] = {}
    for n in range(1, n_samples + 1):
        sample = f"SYN{n:04d}"
        genotypes[sample], truth[sample] = {}, {}
        for symbol, gene in definitions.genes.items():
            first, second = _weighted_allele(rng, gene.alleles), _weighted_allele(rng, gene.alleles)
            truth[sample][symbol] = (first.name, second.name)
            for v in gene.variants:
                a, b = int(v.rsid in first.variants), int(v.rsid in second.variants)
                if rng.random() < missing_rate:
                    genotypes[sample][v.rsid] = "./."
                else:
                    genotypes[sample][v.rsid] = f"{a}|{b}" if phased else f"{min(a, b)}/{max(a, b)}"
    return genotypes, truth


def expected_diplotypes(truth: Mapping[str, Mapping[str, tuple[str, str]]]) -> dict[str, dict[str, str]]:
    """The diplotype strings the caller should report for ``random_genotypes`` truth (table order)."""
    order = {}
    for gene in load_definitions().genes.values():
        for allele in gene.alleles:
            order.setdefault((gene.symbol, allele.name), allele.order)
    return {
        sample: {gene: "/".join(sorted(pair, key=lambda name: order[(gene, name)])) for gene, pair in genes.items()}
        for sample, genes in truth.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help=".vcf, .vcf.gz or .bcf")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--build", choices=("GRCh37", "GRCh38"), default="GRCh38")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phased", action="store_true", help="write phased (|) genotypes")
    parser.add_argument("--missing-rate", type=float, default=0.0, help="fraction of ./. calls")
    parser.add_argument("--background", type=int, default=0, help="random extra SNVs on the same chromosomes")
    parser.add_argument("--index", action="store_true", help="write a .tbi/.csi index (needs .vcf.gz or .bcf)")
    parser.add_argument("--csi", action="store_true", help="CSI instead of tabix index")
    args = parser.parse_args(argv)
    if args.index and not str(args.output).endswith((".gz", ".bgz", ".bcf")):
        parser.error("--index needs a BGZF output: name it .vcf.gz or .bcf")
    genotypes, _ = random_genotypes(args.samples, args.seed, args.phased, args.missing_rate)
    write_vcf(args.output, genotypes, args.build, background=args.background, seed=args.seed)
    if args.index:
        print(index_vcf(args.output, args.csi))
    print(args.output)


if __name__ == "__main__":
    main()
