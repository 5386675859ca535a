"""A deterministic corpus of damaged instances for the receive path's fuzz test (issue 12).

Each :class:`Mutant` is what one C-STORE carries: the request's Affected SOP Class and Instance
UIDs, the presentation context's transfer syntax and the data set's bytes. Mutants are copies of
synthetic CT, MR and CR instances (:mod:`dicom_node.synthetic`, with sequences of defined and
undefined length and a private block added, so that those have something to break), each with a
series of its own and damaged one way (:data:`KINDS`):

* ``flip``: 1–4 random bytes, mostly before the Pixel Data;
* ``truncate``: cut short anywhere;
* ``vr``: an element's VR replaced by an unknown one (``US`` → ``WS``), a lower-case one or
  another known VR;
* ``length``: an element's value length changed (±1, ±2, 0, odd, undefined, random);
* ``uid``: a UID longer than 64 characters, with illegal characters, multi-valued or empty;
* ``sequence``: delimiters dropped, misplaced or with a length, item tags or lengths wrong;
* ``syntax``: the data set sent under another transfer syntax than it is encoded in;
* ``private``: a private element whose private-dictionary VR is US given 3 bytes (implicit VR,
  or explicit VR ``UN``), or its block's creator changed;
* ``request``: the request's SOP Class or Instance UID other than the data set's.

One seed decides everything, so a failure names a mutant that can be made again; nothing binary
is committed.
"""

from __future__ import annotations

import copy
import random
import struct
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    MRImageStorage,
    RLELossless,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32

from dicom_node.synthetic import StudySpec, ct_series, mr_series, xray_instance

__all__ = ["KINDS", "Element", "Mutant", "corpus", "encode", "sources", "walk"]

KINDS = ("flip", "truncate", "vr", "length", "uid", "sequence", "syntax", "private", "request")
SUCCESS, DOES_NOT_MATCH, CANNOT_UNDERSTAND = 0x0000, 0xA900, 0xC000
_ITEM, _ITEM_END, _SEQUENCE_END, _PIXEL_DATA = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD, 0x7FE00010
_VR32 = frozenset(vr.encode() for vr in EXPLICIT_VR_LENGTH_32)
_VR16 = sorted(vr.encode() for vr in EXPLICIT_VR_LENGTH_16)
_PRIVATE_CREATOR, _PRIVATE_US = "SIEMENS MR HEADER", 0x0019100A  # (0019,xx0A) is US in pydicom's private dictionary


@dataclass(frozen=True)
class Mutant:
    """One C-STORE's worth of damaged instance; ``expect``: the statuses it may get, where the
    damage decides (else any documented one)."""

    name: str
    sop_class: str
    sop_instance: str
    transfer_syntax: str
    data_set: bytes
    expect: frozenset[int] | None = None


class Element(NamedTuple):
    """Where an element of a well-formed little-endian data set is (at any depth)."""

    offset: int  # of its header
    tag: int
    vr: bytes  # b"" in implicit VR
    value: int  # offset of its value
    length: int  # 0xFFFFFFFF: undefined


@dataclass
class Source:
    """A valid instance to damage: its Dataset, its encoding and where its parts lie."""

    ds: Dataset
    syntax: str
    data: bytes
    elements: list[Element]
    marks: list[tuple[int, int]]  # (offset, tag) of every item, item delimiter and sequence delimiter

    @property
    def implicit(self) -> bool:
        return self.syntax == ImplicitVRLittleEndian

    @property
    def header_end(self) -> int:
        """Where the Pixel Data's value starts: everything before it is what a reader parses."""
        return next(e.value for e in self.elements if e.tag == _PIXEL_DATA)


def encode(ds: Dataset, implicit: bool) -> bytes:
    """The data set alone (no File Meta), little endian."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, implicit
    write_dataset(fp, ds)
    return fp.getvalue()


def walk(data: bytes, implicit: bool) -> tuple[list[Element], list[tuple[int, int]]]:
    """Elements and item markers of a well-formed little-endian data set, sequences included."""
    elements: list[Element] = []
    marks: list[tuple[int, int]] = []
    _walk(data, 0, len(data), implicit, elements, marks)
    return elements, marks


def _walk(data: bytes, pos: int, end: int, implicit: bool, elements: list[Element], marks: list[tuple[int, int]]) -> int:
    while pos < end:
        group, elem = struct.unpack_from("<HH", data, pos)
        tag = group << 16 | elem
        if tag == _ITEM_END:
            marks.append((pos, tag))
            return pos + 8
        if implicit:
            vr, length, value = b"", struct.unpack_from("<I", data, pos + 4)[0], pos + 8
        else:
            vr = data[pos + 4 : pos + 6]
            if vr in _VR32:
                length, value = struct.unpack_from("<I", data, pos + 8)[0], pos + 12
            else:
                length, value = struct.unpack_from("<H", data, pos + 6)[0], pos + 8
        elements.append(Element(pos, tag, vr, value, length))
        if vr == b"SQ" or (implicit and not group & 1 and dictionary_VR(tag) == "SQ"):
            pos = _items(data, value, None if length == 0xFFFFFFFF else value + length, implicit, elements, marks)
        else:
            pos = value + length
    return pos


def _items(data: bytes, pos: int, end: int | None, implicit: bool, elements: list[Element], marks: list[tuple[int, int]]) -> int:
    while end is None or pos < end:
        tag = struct.unpack_from("<I", data, pos)[0]
        tag = (tag & 0xFFFF) << 16 | tag >> 16
        marks.append((pos, tag))
        if tag == _SEQUENCE_END:
            return pos + 8
        length = struct.unpack_from("<I", data, pos + 4)[0]
        if length == 0xFFFFFFFF:
            pos = _walk(data, pos + 8, len(data), implicit, elements, marks)
        else:
            pos = _walk(data, pos + 8, pos + 8 + length, implicit, elements, marks)
    return pos


def _uid(rng: random.Random) -> str:
    return f"2.25.{rng.getrandbits(120)}"


def _with_sequences_and_private(ds: Dataset) -> Dataset:
    """Add a defined-length and an undefined-length sequence (items nested) and a private block."""
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "121311", "DCM", "Localizer"
    referenced = Dataset()
    referenced.ReferencedSOPClassUID, referenced.ReferencedSOPInstanceUID = ds.SOPClassUID, "1.2.3.4.5"
    referenced.PurposeOfReferenceCodeSequence = Sequence([code])
    ds.ReferencedImageSequence = Sequence([referenced, Dataset()])
    source = Dataset()
    source.ReferencedSOPClassUID, source.ReferencedSOPInstanceUID = ds.SOPClassUID, "1.2.3.4.6"
    ds.SourceImageSequence = Sequence([source, Dataset()])
    ds["SourceImageSequence"].is_undefined_length = True
    for item in ds.SourceImageSequence:
        item.is_undefined_length_sequence_item = True
    block = ds.private_block(0x0019, _PRIVATE_CREATOR, create=True)
    block.add_new(_PRIVATE_US & 0xFF, "US", 1)
    return ds


def sources(seed: int) -> list[Source]:
    """The valid instances mutants are made from: CT and MR in explicit and implicit VR, CR."""
    rng = random.Random(seed)
    made = [
        (ct_series(StudySpec(study_uid=_uid(rng)), shape=(1, 32, 32), lesion_radius=None)[0], ExplicitVRLittleEndian),
        (ct_series(StudySpec(study_uid=_uid(rng)), shape=(1, 32, 32), lesion_radius=None)[0], ImplicitVRLittleEndian),
        (mr_series(StudySpec(study_uid=_uid(rng)), shape=(1, 32, 32), lesion_radius=None)[0], ExplicitVRLittleEndian),
        (mr_series(StudySpec(study_uid=_uid(rng)), shape=(1, 32, 32), lesion_radius=None)[0], ImplicitVRLittleEndian),
        (xray_instance(StudySpec(study_uid=_uid(rng)), size=32, nodule=False, modality="CR"), ExplicitVRLittleEndian),
    ]
    result = []
    for ds, syntax in made:
        ds.InstanceCreationDate = "20260101"  # the rest is fixed by the seed; today is not
        ds.SeriesInstanceUID, ds.SOPInstanceUID = _uid(rng), _uid(rng)
        if "FrameOfReferenceUID" in ds:
            ds.FrameOfReferenceUID = _uid(rng)
        implicit = syntax == ImplicitVRLittleEndian
        data = encode(_with_sequences_and_private(ds), implicit)
        result.append(Source(ds, syntax, data, *walk(data, implicit)))
    return result


def _fresh(src: Source, rng: random.Random) -> tuple[Source, str]:
    """``src`` with a series and SOP instance of its own (so every mutant stored is a series'
    first instance, the one the router reads); its SOP Instance UID."""
    ds = copy.deepcopy(src.ds)
    ds.SeriesInstanceUID, ds.SOPInstanceUID = _uid(rng), _uid(rng)
    data = encode(ds, src.implicit)
    return Source(ds, src.syntax, data, *walk(data, src.implicit)), str(ds.SOPInstanceUID)


def _mutant(kind: str, n: int, src: Source, uid: str, data: bytes, syntax: str | None = None, expect: set[int] | None = None) -> Mutant:
    return Mutant(f"{kind}-{n:03d}", str(src.ds.SOPClassUID), uid, syntax or src.syntax, bytes(data), frozenset(expect) if expect else None)


def _flip(rng: random.Random, src: Source, uid: str, n: int) -> Mutant:
    data = bytearray(src.data)
    reach = len(data) if rng.random() < 0.1 else src.header_end
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(reach)] = rng.randrange(256)
    return _mutant("flip", n, src, uid, data)


def _truncate(rng: random.Random, src: Source, uid: str, n: int) -> Mutant:
    reach = len(src.data) if rng.random() < 0.5 else src.header_end
    return _mutant("truncate", n, src, uid, src.data[: rng.randrange(1, reach)])


def _vr(rng: random.Random, src: Source, uid: str, n: int) -> Mutant:
    if src.implicit:  # no VR to damage: take the explicit VR source's sibling encoding
        src, uid = _fresh(_explicit(src), rng)
    element = rng.choice(src.elements)
    data = bytearray(src.data)
    choice = rng.random()
    if choice < 0.5:  # unknown to DICOM: every reader must refuse it
        new = rng.choice((b"WS", b"QQ", b"ZZ", b"XA"))
        expect = {CANNOT_UNDERSTAND}
    elif choice < 0.7:
        new, expect = element.vr.lower(), None
    else:
        new, expect = rng.choice(_VR16), None
    data[element.offset + 4 : element.offset + 6] = new
    return _mutant("vr", n, src, uid, data, expect=expect)


def _explicit(src: Source) -> Source:
    data = encode(src.ds, implicit=False)
    return Source(src.ds, ExplicitVRLittleEndian, data, *walk(data, False))


def _length(rng: random.Random, src: Source, uid: str, n: int) -> Mutant:
    element = rng.choice(src.elements)
    old = element.length if element.length != 0xFFFFFFFF else 0
    long = src.implicit or element.vr in _VR32
    new = rng.choice((old + 1, old - 1, old + 2, old - 2, 0, old | 1, 0xFFFFFFFF if long else 0xFFFF, rng.randrange(1 << (32 if long else 16))))
    data = bytearray(src.data)
    if long:
        data[element.value - 4 : element.value] = struct.pack("<I", new % (1 << 32))
    else:
        data[element.value - 2 : element.value] = struct.pack("<H", new % (1 << 16))
    return _mutant("length", n, src, uid, data)


_BAD_UIDS = (
    lambda rng: "1.2.826.0.1.3680043.8.498." + "".join(rng.choice("0123456789") for _ in range(rng.randint(39, 60))),
    lambda rng: "1.2.840.abc.1",
    lambda rng: "../../../etc",
    lambda rng: "1..2.3",
    lambda rng: "1.2.3.",
    lambda rng: "1.2.3 4",
    lambda rng: ["1.2.3", "4.5.6"],
    lambda rng: "1.2.3.\u00e9",
    lambda rng: "",
)


def _uid_mutant(rng: random.Random, src: Source, uid: str, n: int) -> Mutant:
    keywords = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "FrameOfReferenceUID")
    keyword = rng.choice([k for k in keywords if k in src.ds])
    ds = copy.deepcopy(src.ds)
    ds.SpecificCharacterSet = "ISO_IR 192"  # so that a non-ASCII UID can be written at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's, on the invalid UID: the point here
        setattr(ds, keyword, rng.choice(_BAD_UIDS)(rng))
        data = encode(ds, src.implicit)
    # The node refuses a bad UID it indexes; a Frame of Reference UID is no business of the receive path.
    expect = None if keyword == "FrameOfReferenceUID" else {DOES_NOT_MATCH}
    return _mutant("uid", n, src, uid, data, expect=expect)


def _sequence(rng: random.Random, src: Source, uid: str, n: int) -> Mutant:
    data = bytearray(src.data)
    marks = src.marks
    sequences = [e for e in src.elements if e.vr == b"SQ" or (src.implicit and e.tag in (0x00081140, 0x00082112, 0x0040A170))]
    choice = rng.randrange(7)
    if choice == 0:  # a sequence delimiter dropped
        at = rng.choice([o for o, t in marks if t == _SEQUENCE_END])
        del data[at : at + 8]
    elif choice == 1:  # an item delimiter dropped
        at = rng.choice([o for o, t in marks if t == _ITEM_END])
        del data[at : at + 8]
    elif choice == 2:  # a delimiter with a length
        at = rng.choice([o for o, t in marks if t in (_ITEM_END, _SEQUENCE_END)])
        data[at + 4 : at + 8] = struct.pack("<I", rng.randint(1, 255))
    elif choice == 3:  # an item's tag replaced by a delimiter's or a random one
        at = rng.choice([o for o, t in marks if t == _ITEM])
        data[at : at + 4] = rng.choice((b"\xfe\xff\x0d\xe0", b"\xfe\xff\xdd\xe0", rng.randbytes(4)))
    elif choice == 4:  # a defined item length off
        at = rng.choice([o for o, t in marks if t == _ITEM and struct.unpack_from("<I", data, o + 4)[0] != 0xFFFFFFFF])
        length = struct.unpack_from("<I", data, at + 4)[0]
        data[at + 4 : at + 8] = struct.pack("<I", max(0, length + rng.choice((-8, -2, 2, 8))))
    elif choice == 5:  # a sequence's defined length off, or made undefined with no delimiter
        element = rng.choice([e for e in sequences if e.length != 0xFFFFFFFF])
        new = rng.choice((element.length - 8, element.length + 8, element.length - 2, 0xFFFFFFFF))
        data[element.value - 4 : element.value] = struct.pack("<I", new)
    else:  # a sequence delimiter inside an item
        at = rng.choice([o for o, t in marks if t == _ITEM]) + 8
        data[at:at] = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    return _mutant("sequence", n, src, uid, data)


def _syntax(rng: random.Random, src: Source, uid: str, n: int) -> Mutant:
    if src.implicit:
        syntax = rng.choice((ExplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian))
    else:
        syntax = rng.choice((ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless))
    # Implicit VR read as explicit or the reverse: every reader must notice.
    swapped = {src.syntax, syntax} == {ImplicitVRLittleEndian, ExplicitVRLittleEndian}
    return _mutant("syntax", n, src, uid, src.data, syntax=syntax, expect={CANNOT_UNDERSTAND} if swapped else None)


def _private(rng: random.Random, src: Source, uid: str, n: int) -> Mutant:
    """(0019,xx0A) under its creator is US to pydicom, whether the stream says US, UN or nothing
    (implicit VR): 3 bytes are refused. Under an unknown creator it is UN: 3 bytes are fine."""
    ds = copy.deepcopy(src.ds)
    known = rng.random() < 0.7
    if not known:
        ds[0x00190010].value = "NOT A KNOWN CREATOR"
    data = bytearray(encode(ds, src.implicit))
    element = next(e for e in walk(bytes(data), src.implicit)[0] if e.tag == _PRIVATE_US)
    if src.implicit:
        data[element.value - 4 : element.value] = struct.pack("<I", 3)
    elif known and rng.random() < 0.5:
        data[element.value - 2 : element.value] = struct.pack("<H", 3)
    else:  # explicit VR UN (PS3.5 6.2.2): a 32-bit length
        data[element.offset + 4 : element.value] = b"UN\x00\x00" + struct.pack("<I", 3)
    value = element.offset + (8 if src.implicit or data[element.offset + 4 : element.offset + 6] == b"US" else 12)
    data[value + 2 : value + 2] = b"\x00"
    return _mutant("private", n, src, uid, data, expect={CANNOT_UNDERSTAND} if known else {SUCCESS})


def _request(rng: random.Random, src: Source, uid: str, n: int) -> Mutant:
    if rng.random() < 0.5:
        return _mutant("request", n, src, _uid(rng), src.data, expect={DOES_NOT_MATCH})
    other = MRImageStorage if str(src.ds.SOPClassUID) != MRImageStorage else "1.2.840.10008.5.1.4.1.1.2"
    return Mutant(f"request-{n:03d}", other, uid, src.syntax, src.data, frozenset({DOES_NOT_MATCH}))


_MAKERS: dict[str, Callable[[random.Random, Source, str, int], Mutant]] = {
    "flip": _flip, "truncate": _truncate, "vr": _vr, "length": _length, "uid": _uid_mutant,
    "sequence": _sequence, "syntax": _syntax, "private": _private, "request": _request,
}  # fmt: skip


def corpus(seed: int, per_kind: int) -> Iterator[Mutant]:
    """``per_kind`` mutants of every kind, interleaved, all decided by ``seed``."""
    rng = random.Random(seed)
    made = sources(seed)
    for n in range(per_kind):
        for kind in KINDS:
            src, uid = _fresh(rng.choice(made), rng)
            yield _MAKERS[kind](rng, src, uid, n)
