"""Read genotypes at the core pharmacogenomic positions, and what else lies in each gene, with cyvcf2.

The records read are those overlapping each gene region (``regions.tsv``) on both builds: on the
declared build they give the calls and the unassessed variants, on the other build the evidence
that the file is on it (``genome_build``). A bgzipped VCF or BCF with a tabix (.tbi) or CSI (.csi)
index is read by one region query per gene and build; anything else is scanned once.

A position without a record, with a ``./.`` genotype, or whose record has no coverage for the sample
(``DP`` 0 or ``GQ`` 0, as gVCF blocks over uncovered sequence have) is not called — never taken as
reference. gVCF reference blocks (symbolic-only ALT spanning the position) are reference calls when
the build is confirmed. A non-reference call in a gene region that is not the record of a core
position (another SNV, an indel, a structural variant, a split multi-allelic record) is returned
as a :class:`Finding`: the node does not assess it, so the gene is not assessable.
"""

from __future__ import annotations

import bisect
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from cyvcf2 import VCF

from pipelines.base import PipelineError
from pipelines.genomics.definitions import BUILDS, Definitions, Variant
from pipelines.genomics.genome_build import Site, check_build, chrom_key, resolve_build

__all__ = ["Call", "Finding", "VcfCalls", "read_calls"]

log = logging.getLogger(__name__)

REF, ALT, OTHER = 0, 1, 2
_SYMBOLIC = {"<NON_REF>", "<*>", "<X>"}
_NOT_A_VARIANT = _SYMBOLIC | {"*"}  # '*' stands for a deletion given in its own record
_LONG_ALLELE = 12


@dataclass(frozen=True)
class Call:
    """One sample's genotype at one core position.

    ``codes`` holds the two alleles as the gene's reference allele (0), the defining allele (1) or
    another allele (2), or is ``None`` when the position is not called (``missing`` says why).
    """

    codes: tuple[int, int] | None
    phased: bool = False
    phase_set: int | None = None
    display: str = "./."
    missing: str | None = None


def _short(allele: str) -> str:
    return allele if len(allele) <= _LONG_ALLELE else f"{allele[:_LONG_ALLELE - 2]}…({len(allele)} bp)"


@dataclass(frozen=True)
class Finding:
    """A non-reference call in a gene region at a position the node does not assess."""

    chrom: str
    pos: int
    ref: str
    alt: str
    genotype: str

    def __str__(self) -> str:
        return f"chr{self.chrom}:{self.pos} {_short(self.ref)}>{_short(self.alt)}"


@dataclass
class VcfCalls:
    """Per sample: calls at the core positions (rsID → Call) and unassessed findings (gene → findings)."""

    build: str
    build_source: str
    indexed: bool
    samples: list[str]
    calls: dict[str, dict[str, Call]]
    unassessed: dict[str, dict[str, tuple[Finding, ...]]]
    positions_found: int
    warnings: list[str]


@dataclass(frozen=True)
class _Record:
    """The fields used from one cyvcf2 record, copied out so no htslib object outlives the file."""

    chrom: str
    pos: int
    end: int
    ref: str
    alleles: tuple[str, ...]
    block: bool
    genotypes: tuple[tuple, ...]
    phase_sets: tuple[int | None, ...] | None
    uncovered: tuple[str | None, ...]

    def carried(self, index: int) -> list[int]:
        """Allele indices other than REF that sample ``index`` carries."""
        return [k for k in self.genotypes[index][:-1] if k > 0]


@dataclass(frozen=True)
class _Formats:
    """Which optional FORMAT fields the header declares."""

    phase_sets: bool
    depth: bool
    quality: bool


def _formats(raw_header: str) -> _Formats:
    return _Formats(*(f"##FORMAT=<ID={key}," in raw_header for key in ("PS", "DP", "GQ")))


def _record(v, formats: _Formats) -> _Record:
    alts = tuple(v.ALT)
    block = bool(alts) and all(a in _SYMBOLIC for a in alts)
    n = len(v.genotypes)
    ps = None
    if formats.phase_sets:
        values = v.format("PS")
        if values is not None:
            ps = tuple(int(x[0]) if int(x[0]) >= 0 else None for x in values)
    uncovered: list[str | None] = [None] * n
    if formats.depth and (depths := v.format("DP")) is not None:
        uncovered = ["no coverage (DP=0)" if int(d[0]) == 0 else None for d in depths]
    if formats.quality:
        uncovered = [u or ("genotype quality 0" if q == 0 else None) for u, q in zip(uncovered, v.gt_quals)]
    return _Record(chrom_key(v.CHROM), v.POS, v.end, v.REF, (v.REF, *alts), block,
                   tuple(tuple(g) for g in v.genotypes), ps, tuple(uncovered))


_Key = tuple[str, str]  # (build, gene)


def _targets(definitions: Definitions) -> list[tuple[_Key, str, int, int]]:
    return [((build, gene), region.chrom, *region.bounds[build])
            for build in BUILDS for gene, region in definitions.regions.items()]


def _fetch_indexed(vcf: VCF, definitions: Definitions, formats: _Formats) -> dict[_Key, list[_Record]]:
    names = {chrom_key(name): name for name in vcf.seqnames}
    found: dict[_Key, list[_Record]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # cyvcf2 warns on empty regions: a normal outcome here
        for key, chrom, start, end in _targets(definitions):
            name = names.get(chrom)
            found[key] = [_record(v, formats) for v in vcf(f"{name}:{start}-{end}")] if name else []
    return found


def _fetch_scan(vcf: VCF, definitions: Definitions, formats: _Formats) -> dict[_Key, list[_Record]]:
    by_chrom: dict[str, list[tuple[_Key, int, int]]] = {}
    for key, chrom, start, end in _targets(definitions):
        by_chrom.setdefault(chrom, []).append((key, start, end))
    found: dict[_Key, list[_Record]] = {key: [] for key, *_ in _targets(definitions)}
    for v in vcf:
        targets = by_chrom.get(chrom_key(v.CHROM))
        if not targets:
            continue
        hits = [key for key, start, end in targets if v.POS <= end and v.end >= start]
        if hits:
            record = _record(v, formats)
            for key in hits:
                found[key].append(record)
    return found


def read_calls(path: Path, definitions: Definitions, sample: str | None = None,
               build: str | None = None) -> VcfCalls:
    """Calls and unassessed findings of every (or one) sample; malformed input raises PipelineError."""
    if not path.is_file():
        raise PipelineError(f"VCF not found: {path.name}")
    try:
        vcf = VCF(str(path), lazy=True)
    except OSError as exc:
        raise PipelineError(f"{path.name} is not a readable VCF/BCF file: {exc}") from None
    try:
        samples = list(vcf.samples)
        if not samples:
            raise PipelineError(f"{path.name} has no sample columns (sites-only VCF)")
        if "##FORMAT=<ID=GT," not in vcf.raw_header:
            raise PipelineError(f"{path.name} has no GT (genotype) FORMAT field")
        if sample is not None:
            if sample not in samples:
                raise PipelineError(f"sample {sample!r} not found in {path.name} ({len(samples)} samples)")
            vcf.set_samples([sample])
            samples = [sample]
        resolved, source = resolve_build(vcf.raw_header, build)
        indexed = any(path.with_name(path.name + suffix).exists() for suffix in (".tbi", ".csi"))
        log.debug("reading %d gene regions from %s (%s)", len(definitions.regions), path.name,
                  "indexed" if indexed else "scan")
        try:
            records = (_fetch_indexed if indexed else _fetch_scan)(vcf, definitions, _formats(vcf.raw_header))
        except Exception as exc:  # cyvcf2 raises bare Exception for htslib parse errors
            raise PipelineError(f"malformed VCF record in {path.name}: {exc}") from None
    finally:
        vcf.close()
    return _Assembly(records, definitions, samples, resolved).calls(source, indexed)


class _Records:
    """The records of one gene region on one build, looked up by start and by covering block."""

    def __init__(self, records: list[_Record]) -> None:
        self.starts: dict[int, list[_Record]] = {}
        for record in records:
            self.starts.setdefault(record.pos, []).append(record)
        self.blocks = sorted((r for r in records if r.block), key=lambda r: r.pos)
        self.block_starts = [r.pos for r in self.blocks]

    def choose(self, variant: Variant, build: str) -> _Record | None:
        """The record giving the genotype at ``variant``: the SNV record there, else a covering block."""
        pos = variant.position(build)
        exact = [r for r in self.starts.get(pos, []) if not r.block]
        if exact:
            return next((r for r in exact if variant.genome_alt(build) in r.alleles[1:]), exact[0])
        i = bisect.bisect_right(self.block_starts, pos) - 1
        return self.blocks[i] if i >= 0 and self.blocks[i].end >= pos else None

    def sites(self, variant: Variant, build: str) -> list[Site]:
        return [Site(variant, r.ref, r.block,
                     frozenset(r.alleles[k] for i in range(len(r.genotypes)) for k in r.carried(i)))
                for r in self.starts.get(variant.position(build), [])]


class _Assembly:
    """Turns the fetched records into calls: build check, record per position, findings per gene."""

    def __init__(self, records: dict[_Key, list[_Record]], definitions: Definitions, samples: list[str],
                 build: str) -> None:
        self.definitions = definitions
        self.samples = samples
        self.build = build
        self.by_key = {key: _Records(found) for key, found in records.items()}
        self.variants = [v for gene in definitions.genes.values() for v in gene.variants]

    def calls(self, source: str, indexed: bool) -> VcfCalls:
        build = self.build
        sites = {b: [s for v in self.variants for s in self.by_key[(b, v.gene)].sites(v, b)] for b in BUILDS}
        check = check_build(build, source, sites)
        chosen = {v.rsid: self.by_key[(build, v.gene)].choose(v, build) for v in self.variants}
        notes = list(check.warnings)
        found = sum(1 for r in chosen.values() if r is not None)
        if not found:
            notes.append(
                f"none of the {len(self.variants)} pharmacogenomic positions has a record in the VCF: "
                f"check the genome build ({build}, from {source}) and that the file covers these genes"
            )
        calls: dict[str, dict[str, Call]] = {s: {} for s in self.samples}
        for variant in self.variants:
            record = chosen[variant.rsid]
            for index, sample in enumerate(self.samples):
                calls[sample][variant.rsid] = self._call(variant, record, index, check.confirmed,
                                                         variant.rsid in check.mismatched)
        used = {id(r) for r in chosen.values() if r is not None}
        unassessed = {sample: self._findings(index, used) for index, sample in enumerate(self.samples)}
        return VcfCalls(build, source, indexed, self.samples, calls, unassessed, found, notes)

    def _call(self, variant: Variant, record: _Record | None, index: int, confirmed: bool,
              mismatched: bool) -> Call:
        build = self.build
        if record is None:
            return Call(None, missing="no VCF record")
        if mismatched and record.pos == variant.position(build):
            return Call(None, missing=f"VCF REF {record.ref} differs from {build} REF {variant.genome_ref(build)}")
        if record.block and not confirmed:
            return Call(None, missing=f"gVCF reference block only; no record confirms {build}")
        if record.uncovered[index]:
            return Call(None, missing=record.uncovered[index])
        return _sample_call(record, index, variant, build)

    def _findings(self, index: int, used: set[int]) -> dict[str, tuple[Finding, ...]]:
        """Non-reference calls of sample ``index`` in each gene region other than the records used for calls."""
        findings: dict[str, tuple[Finding, ...]] = {}
        for gene in self.definitions.regions:
            records = self.by_key[(self.build, gene)]
            found = []
            for record in (r for rs in records.starts.values() for r in rs):
                if record.block or id(record) in used:
                    continue
                gt = record.genotypes[index]
                display = ("|" if gt[-1] else "/").join("." if k < 0 else str(k) for k in gt[:-1])
                found += [Finding(record.chrom, record.pos, record.ref, record.alleles[k], display)
                          for k in dict.fromkeys(record.carried(index)) if record.alleles[k] not in _NOT_A_VARIANT]
            if found:
                findings[gene] = tuple(sorted(found, key=lambda f: (f.pos, f.alt)))
        return findings


def _sample_call(record: _Record, index: int, variant: Variant, build: str) -> Call:
    gt = record.genotypes[index]
    if len(gt) != 3:
        return Call(None, missing=f"unexpected ploidy ({len(gt) - 1} alleles)")
    first, second, phased = gt
    if first < 0 and second < 0:
        return Call(None, missing="missing genotype (./.)")
    if first < 0 or second < 0:
        return Call(None, missing="partial genotype")

    def base(k: int) -> str:
        if record.block:
            return variant.genome_ref(build) if k == 0 else record.alleles[k]
        return record.alleles[k]

    def code(k: int) -> int:
        b = base(k)
        return REF if b == variant.ref else ALT if b == variant.alt else OTHER

    sep = "|" if phased else "/"
    ps = record.phase_sets[index] if record.phase_sets else None
    return Call((code(first), code(second)), bool(phased), ps, sep.join(base(k) for k in (first, second)))
