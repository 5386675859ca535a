"""Read genotypes at the core pharmacogenomic positions from a VCF/BCF with cyvcf2.

A bgzipped VCF or BCF with a tabix (.tbi) or CSI (.csi) index is read by one region query per
position; anything else is scanned once. The genome build comes from the header (``##reference``,
``##assembly``, ``##contig`` assembly or well-known contig lengths) or the ``build`` parameter; a
conflict between them, or no build at all, is a :class:`PipelineError`.

A position without a record, or with a ``./.`` genotype, is reported as not called — never taken as
reference. gVCF reference blocks (symbolic-only ALT spanning the position) are explicit reference
calls and are used.
"""

from __future__ import annotations

import bisect
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cyvcf2 import VCF

from pipelines.base import PipelineError
from pipelines.genomics.definitions import BUILDS, Variant

__all__ = ["Call", "VcfCalls", "CONTIG_LENGTHS", "read_calls", "header_build", "normalise_build"]

log = logging.getLogger(__name__)

REF, ALT, OTHER = 0, 1, 2
_SYMBOLIC = {"<NON_REF>", "<*>", "<X>"}
_BUILD_TOKENS = {
    "GRCh38": {"grch38", "hg38", "hs38", "hs38dh", "b38", "assembly38"},
    "GRCh37": {"grch37", "hg19", "hs37", "hs37d5", "b37", "v37", "ncbi37", "assembly19"},
}
_UNSUPPORTED_TOKENS = {"ncbi36", "hg18", "b36", "grch36", "chm13", "t2t"}
# Primary-assembly contig lengths (GRCh37, GRCh38) of the chromosomes carrying the genes called here.
CONTIG_LENGTHS = {
    "1": (249250621, 248956422),
    "6": (171115067, 170805979),
    "10": (135534747, 133797422),
    "12": (133851895, 133275309),
    "16": (90354753, 90338345),
}
_BUILD_ALIASES = {
    "grch37": "GRCh37", "hg19": "GRCh37", "37": "GRCh37",
    "grch38": "GRCh38", "hg38": "GRCh38", "38": "GRCh38",
}


@dataclass(frozen=True)
class Call:
    """One sample's genotype at one core position.

    ``codes`` holds the two alleles as REF (0), the defining ALT (1) or another allele (2), or is
    ``None`` when the position is not called (``missing`` says why).
    """

    codes: tuple[int, int] | None
    phased: bool = False
    phase_set: int | None = None
    display: str = "./."
    missing: str | None = None


@dataclass
class VcfCalls:
    build: str
    build_source: str
    indexed: bool
    samples: list[str]
    calls: dict[str, dict[str, Call]]
    positions_found: int
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Record:
    """The fields used from one cyvcf2 record, copied out so no htslib object outlives the file."""

    pos: int
    ref: str
    alleles: tuple[str, ...]
    block: bool
    genotypes: tuple[tuple, ...]
    phase_sets: tuple[int | None, ...] | None


def normalise_build(build: str) -> str:
    """Accept GRCh37/GRCh38 and the usual aliases (hg19, hg38, 37, 38)."""
    resolved = _BUILD_ALIASES.get(build.strip().lower())
    if resolved is None:
        raise PipelineError(f"unsupported genome build {build!r}: use one of {', '.join(BUILDS)}")
    return resolved


def _chrom_key(chrom: str) -> str:
    return chrom[3:] if chrom.lower().startswith("chr") else chrom


def header_build(raw_header: str) -> tuple[str | None, str]:
    """The build a VCF header declares and the evidence for it; conflicting evidence is an error."""
    evidence: dict[str, list[str]] = {}

    def note(value: str, source: str) -> None:
        tokens = set(re.split(r"[^a-z0-9]+", value.lower()))
        if tokens & _UNSUPPORTED_TOKENS:
            evidence.setdefault(value, []).append(source)
        for build, known in _BUILD_TOKENS.items():
            if tokens & known:
                evidence.setdefault(build, []).append(source)

    for line in raw_header.splitlines():
        if line.startswith(("##reference=", "##assembly=")):
            note(line.split("=", 1)[1], line.split("=", 1)[0].lstrip("#"))
        elif line.startswith("##contig=<"):
            fields = dict(re.findall(r"([A-Za-z]+)=(\"[^\"]*\"|[^,>]*)", line[len("##contig=<") :]))
            if "assembly" in fields:
                note(fields["assembly"].strip('"'), "contig assembly")
            lengths = CONTIG_LENGTHS.get(_chrom_key(fields.get("ID", "")))
            if lengths and fields.get("length", "").isdigit():
                length = int(fields["length"])
                if length in lengths:
                    evidence.setdefault(BUILDS[lengths.index(length)], []).append("contig length")
    unsupported = [b for b in evidence if b not in BUILDS]
    if unsupported:
        raise PipelineError(
            f"VCF header declares genome build {unsupported[0]!r}; only GRCh37 and GRCh38 are supported"
        )
    if len(evidence) > 1:
        detail = "; ".join(f"{b} ({', '.join(sorted(set(s)))})" for b, s in sorted(evidence.items()))
        raise PipelineError(f"VCF header declares conflicting genome builds: {detail}")
    if not evidence:
        return None, ""
    build, sources = next(iter(evidence.items()))
    return build, "header " + ", ".join(sorted(set(sources)))


def _resolve_build(raw_header: str, build: str | None) -> tuple[str, str]:
    declared, source = header_build(raw_header)
    requested = normalise_build(build) if build else None
    if declared and requested and declared != requested:
        raise PipelineError(
            f"genome build mismatch: VCF header declares {declared} ({source}) but build={requested} was requested"
        )
    if declared:
        return declared, source
    if requested:
        return requested, "parameter"
    raise PipelineError(
        "VCF header declares no genome build (no ##reference, ##contig assembly or known contig "
        "lengths); pass build='GRCh37' or build='GRCh38'"
    )


def _index_of(path: Path) -> Path | None:
    for suffix in (".tbi", ".csi"):
        candidate = path.with_name(path.name + suffix)
        if candidate.exists():
            return candidate
    return None


def _record(v, phase_sets: bool) -> _Record:
    alts = tuple(v.ALT)
    block = bool(alts) and all(a in _SYMBOLIC for a in alts) and v.end > v.POS
    ps = None
    if phase_sets:
        values = v.format("PS")
        if values is not None:
            ps = tuple(int(x[0]) if int(x[0]) >= 0 else None for x in values)
    return _Record(v.POS, v.REF, (v.REF, *alts), block, tuple(tuple(g) for g in v.genotypes), ps)


def _choose(records: list[_Record], pos: int, alt: str) -> _Record | None:
    exact = [r for r in records if r.pos == pos and not r.block]
    if exact:
        return next((r for r in exact if alt in r.alleles[1:]), exact[0])
    return next((r for r in records if r.block), None)


def _sample_call(record: _Record, index: int, variant: Variant) -> Call:
    gt = record.genotypes[index]
    if len(gt) != 3:
        return Call(None, missing=f"unexpected ploidy ({len(gt) - 1} alleles)")
    first, second, phased = gt
    if first < 0 and second < 0:
        return Call(None, missing="missing genotype (./.)")
    if first < 0 or second < 0:
        return Call(None, missing="partial genotype")

    def code(k: int) -> int:
        if record.block:
            return REF if k == 0 else OTHER
        base = record.alleles[k]
        return REF if base == variant.ref else ALT if base == variant.alt else OTHER

    sep = "|" if phased else "/"
    bases = [variant.ref if record.block and k == 0 else record.alleles[k] for k in (first, second)]
    ps = record.phase_sets[index] if record.phase_sets else None
    return Call((code(first), code(second)), bool(phased), ps, sep.join(bases))


def _fetch_indexed(vcf: VCF, variants: Sequence[Variant], build: str) -> dict[str, list[_Record]]:
    names = {_chrom_key(name): name for name in vcf.seqnames}
    phase_sets = "##FORMAT=<ID=PS," in vcf.raw_header
    found: dict[str, list[_Record]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # cyvcf2 warns on empty regions: a normal outcome here
        for variant in variants:
            name = names.get(variant.chrom)
            if name is None:
                continue
            pos = variant.position(build)
            found[variant.rsid] = [_record(v, phase_sets) for v in vcf(f"{name}:{pos}-{pos}")]
    return found


def _fetch_scan(vcf: VCF, variants: Sequence[Variant], build: str) -> dict[str, list[_Record]]:
    by_chrom: dict[str, dict[int, Variant]] = {}
    for variant in variants:
        by_chrom.setdefault(variant.chrom, {})[variant.position(build)] = variant
    sorted_positions = {chrom: sorted(targets) for chrom, targets in by_chrom.items()}
    phase_sets = "##FORMAT=<ID=PS," in vcf.raw_header
    found: dict[str, list[_Record]] = {}
    for v in vcf:
        chrom = _chrom_key(v.CHROM)
        targets = by_chrom.get(chrom)
        if not targets:
            continue
        positions = sorted_positions[chrom]
        lo = bisect.bisect_left(positions, v.POS)
        hi = bisect.bisect_right(positions, v.end)
        if lo == hi:
            continue
        record = _record(v, phase_sets)
        for pos in positions[lo:hi]:
            if pos == v.POS or record.block:
                found.setdefault(targets[pos].rsid, []).append(record)
    return found


def read_calls(path: Path, variants: Sequence[Variant], sample: str | None = None,
               build: str | None = None) -> VcfCalls:
    """Genotypes of every (or one) sample at ``variants``; malformed input raises PipelineError."""
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
        resolved, source = _resolve_build(vcf.raw_header, build)
        indexed = _index_of(path) is not None
        log.debug("reading %d positions from %s (%s)", len(variants), path.name, "indexed" if indexed else "scan")
        try:
            records = (_fetch_indexed if indexed else _fetch_scan)(vcf, variants, resolved)
        except Exception as exc:  # cyvcf2 raises bare Exception for htslib parse errors
            raise PipelineError(f"malformed VCF record in {path.name}: {exc}") from None
    finally:
        vcf.close()
    return _assemble(records, variants, samples, resolved, source, indexed)


def _assemble(
    records: dict[str, list[_Record]],
    variants: Sequence[Variant],
    samples: list[str],
    build: str,
    source: str,
    indexed: bool,
) -> VcfCalls:
    chosen = {v.rsid: _choose(records.get(v.rsid, []), v.position(build), v.alt) for v in variants}
    checked = [(v, r) for v in variants if (r := chosen[v.rsid]) is not None and not r.block]
    mismatched = [v.rsid for v, r in checked if r.ref[:1] != v.ref]
    if len(checked) >= 3 and 2 * len(mismatched) > len(checked):
        raise PipelineError(
            f"REF alleles at {len(mismatched)} of {len(checked)} pharmacogenomic positions differ from {build}: "
            "the VCF is probably on another genome build"
        )
    notes = []
    found = sum(1 for r in chosen.values() if r is not None)
    if not found:
        notes.append(
            f"none of the {len(variants)} pharmacogenomic positions has a record in the VCF: "
            f"check the genome build ({build}, from {source}) and that the file covers these genes"
        )
    calls: dict[str, dict[str, Call]] = {s: {} for s in samples}
    for variant in variants:
        record = chosen[variant.rsid]
        for index, sample in enumerate(samples):
            if record is None:
                call = Call(None, missing="no VCF record")
            elif variant.rsid in mismatched:
                call = Call(None, missing=f"VCF REF {record.ref} differs from {build} REF {variant.ref}")
            else:
                call = _sample_call(record, index, variant)
            calls[sample][variant.rsid] = call
    return VcfCalls(build, source, indexed, samples, calls, found, notes)
