"""Which genome build a VCF is on: what its header declares, and whether its records agree.

Header: ``##reference``, ``##assembly``, ``##contig`` assembly or the GRCh37/GRCh38 contig lengths,
or else the ``build`` parameter; a conflict between them, or no build at all, is a
:class:`PipelineError`.

Records: without a reference FASTA a REF base can only be checked where a record starts at a
position whose base is known, i.e. at a core position. gVCF reference blocks count like any other
record there (their REF is the base at POS). A header that names the wrong build does not move the
records, so three rules apply (the file is not assessable and no call is made when one fails):

1. REF bases that disagree with the declared build at most of the checked positions.
2. More records carrying a core variant at its position on the *other* build than on the declared
   one. This catches a GRCh37 gVCF labelled GRCh38 whose reference blocks would otherwise read as
   reference calls at the GRCh38 positions: most genomes carry a non-reference base at CYP2C19
   c.991A>G on GRCh38 and at DPYD c.85T>C on GRCh37, so nearly every file has such a record.
3. If no record at any core position confirms the declared build, reference blocks are not taken
   as reference calls (``confirmed`` is False); explicit genotype records still are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pipelines.base import PipelineError
from pipelines.genomics.definitions import BUILDS, Variant

__all__ = ["CONTIG_LENGTHS", "Site", "BuildCheck", "normalise_build", "header_build", "resolve_build", "check_build"]

_BUILD_TOKENS = {
    "GRCh38": {"grch38", "hg38", "hs38", "hs38dh", "b38", "assembly38"},
    "GRCh37": {"grch37", "hg19", "hs37", "hs37d5", "b37", "v37", "ncbi37", "assembly19"},
}
_UNSUPPORTED_TOKENS = {"ncbi36", "hg18", "b36", "grch36", "chm13", "t2t"}
# Primary-assembly contig lengths (GRCh37, GRCh38) of the chromosomes carrying the genes read here.
CONTIG_LENGTHS = {
    "1": (249250621, 248956422),
    "6": (171115067, 170805979),
    "10": (135534747, 133797422),
    "12": (133851895, 133275309),
    "13": (115169878, 114364328),
    "16": (90354753, 90338345),
    "19": (59128983, 58617616),
}
_BUILD_ALIASES = {
    "grch37": "GRCh37", "hg19": "GRCh37", "37": "GRCh37",
    "grch38": "GRCh38", "hg38": "GRCh38", "38": "GRCh38",
}


def normalise_build(build: str) -> str:
    """Accept GRCh37/GRCh38 and the usual aliases (hg19, hg38, 37, 38)."""
    resolved = _BUILD_ALIASES.get(build.strip().lower())
    if resolved is None:
        raise PipelineError(f"unsupported genome build {build!r}: use one of {', '.join(BUILDS)}")
    return resolved


def chrom_key(chrom: str) -> str:
    """A contig name without its ``chr`` prefix, as the definitions name chromosomes."""
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
            lengths = CONTIG_LENGTHS.get(chrom_key(fields.get("ID", "")))
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


def resolve_build(raw_header: str, build: str | None) -> tuple[str, str]:
    """The build to read the file on and where it came from (header or parameter)."""
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


@dataclass(frozen=True)
class Site:
    """A record that starts at a core variant's position on one build: what the check reads of it."""

    variant: Variant
    ref: str
    block: bool
    carried: frozenset[str]


@dataclass(frozen=True)
class BuildCheck:
    """What the records say about the declared build."""

    mismatched: frozenset[str]
    confirmed: bool
    warnings: list[str] = field(default_factory=list)


def _carriers(sites: Iterable[Site], build: str) -> int:
    """Records at ``build``'s positions whose REF is that build's base and whose ALT some sample carries."""
    return sum(1 for s in sites if not s.block and s.ref == s.variant.genome_ref(build)
               and s.variant.genome_alt(build) in s.carried)


def check_build(build: str, source: str, sites: Mapping[str, list[Site]]) -> BuildCheck:
    """Apply the module's three rules to the records at the core positions of each build."""
    other = next(b for b in BUILDS if b != build)
    declared = sites.get(build, [])
    mismatched = frozenset(s.variant.rsid for s in declared if s.ref[:1] != s.variant.genome_ref(build))
    checked = len({s.variant.rsid for s in declared})
    if checked >= 3 and 2 * len(mismatched) > checked:
        raise PipelineError(
            f"not assessable: REF alleles at {len(mismatched)} of {checked} pharmacogenomic positions differ from "
            f"{build} ({source}): the VCF is probably on another genome build"
        )
    here, there = _carriers(declared, build), _carriers(sites.get(other, []), other)
    if there > here:
        raise PipelineError(
            f"not assessable: {there} record(s) carry a pharmacogenomic variant at its {other} position and {here} "
            f"at its {build} position: the VCF is probably on {other}, although {build} comes from the {source}"
        )
    confirmed = any(s.ref[:1] == s.variant.genome_ref(build) for s in declared)
    unconfirmed = (f"no record starts at a pharmacogenomic position with a {build} REF base, so the build "
                   f"({source}) is unconfirmed: gVCF reference blocks are not used as reference calls")
    warnings = [] if confirmed else [unconfirmed]
    return BuildCheck(mismatched, confirmed, warnings)
