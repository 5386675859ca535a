"""Reading and checking what the index needs from a stored instance, without its pixel data.

Used on the receive path (to validate before acknowledging) and by reconciliation (to index a
file whose row was lost in a crash). A file passes only if pydicom can read every element of it
to a value: whatever reads it later (the router reads every element of a series' first
instance) must not fail on it, so one bad instance cannot stop a loop shared by every study.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.datadict import DicomDictionary, dictionary_VR, private_dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.hooks import raw_element_vr
from pydicom.uid import UID
from pydicom.valuerep import EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32

__all__ = ["HeaderError", "InstanceRecord", "quick_values", "read_header", "record_from_dataset", "valid_uid"]


class HeaderError(ValueError):
    """The stored bytes are not an acceptable instance; ``status`` is the DIMSE failure to send."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass
class InstanceRecord:
    """One instance's index attributes (patient → study → series → instance)."""

    sop_instance_uid: str
    sop_class_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax: str
    path: str = ""
    size: int = 0
    calling_ae: str = ""
    received_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
    made_by_node: bool = False
    patient_id: str = ""
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    study_id: str = ""
    study_description: str = ""
    referring_physician: str = ""
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    body_part: str = ""
    manufacturer: str = ""
    instance_number: int | None = None
    other_patient_ids: tuple[tuple[str, str, str], ...] = ()  # Other Patient IDs Sequence: (ID, issuer, type)


# InstanceRecord field, DICOM keyword, VR, longest text kept (None: all of it; an IS becomes an
# integer). A UID is never cut: one cut short may be another instance's, so an invalid one is refused.
_FIELDS: tuple[tuple[str, str, str, int | None], ...] = (
    ("sop_instance_uid", "SOPInstanceUID", "UI", None),
    ("sop_class_uid", "SOPClassUID", "UI", None),
    ("study_uid", "StudyInstanceUID", "UI", None),
    ("series_uid", "SeriesInstanceUID", "UI", None),
    ("patient_id", "PatientID", "LO", 64),
    ("patient_name", "PatientName", "PN", 324),
    ("birth_date", "PatientBirthDate", "DA", 8),
    ("sex", "PatientSex", "CS", 16),
    ("study_date", "StudyDate", "DA", 8),
    ("study_time", "StudyTime", "TM", 16),
    ("accession_number", "AccessionNumber", "SH", 16),
    ("study_id", "StudyID", "SH", 16),
    ("study_description", "StudyDescription", "LO", 64),
    ("referring_physician", "ReferringPhysicianName", "PN", 324),
    ("modality", "Modality", "CS", 16),
    ("series_number", "SeriesNumber", "IS", None),
    ("series_description", "SeriesDescription", "LO", 64),
    ("body_part", "BodyPartExamined", "CS", 16),
    ("manufacturer", "Manufacturer", "LO", 64),
    ("instance_number", "InstanceNumber", "IS", None),
)
_REQUIRED = (("sop_instance_uid", "SOPInstanceUID"), ("study_uid", "StudyInstanceUID"), ("series_uid", "SeriesInstanceUID"))
_UIDS = (*_REQUIRED, ("sop_class_uid", "SOPClassUID"))
# PS3.5 9.1: digits in dot-separated components, at most 64 characters. A component's leading
# zero, also forbidden there, is let through: it is common in the wild and harmless here.
_UID_SYNTAX = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def valid_uid(uid: str) -> bool:
    """Whether ``uid`` can be indexed (the index's UID columns hold 64 characters) and sent on
    unchanged: a peer keeps at most 64 characters, so a longer UID could turn into another's."""
    return len(uid) <= 64 and _UID_SYNTAX.fullmatch(uid) is not None


def _text(ds: Dataset, keyword: str, limit: int | None) -> str:
    value = ds.get(keyword, "")
    return ("" if value is None else str(value)).strip()[:limit]


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _record(values: dict[str, Any], transfer_syntax: str) -> InstanceRecord:
    missing = [keyword for name, keyword in _REQUIRED if not values[name]]
    if missing:
        raise HeaderError(f"dataset lacks {', '.join(missing)}", 0xA900)
    for name, keyword in _UIDS:
        if values[name] and not valid_uid(values[name]):
            raise HeaderError(f"{keyword} {values[name][:80]!r} ({len(values[name])} characters) is not a valid UID (PS3.5 9.1)", 0xA900)
    return InstanceRecord(transfer_syntax=transfer_syntax, **values)


def record_from_dataset(ds: Dataset, transfer_syntax: str) -> InstanceRecord:
    """Index attributes of ``ds``; raises HeaderError(0xA900) when a required UID is missing or
    any of its UIDs is invalid."""
    values: dict[str, Any] = {
        name: _int(ds, kw) if vr == "IS" else _text(ds, kw, limit) for name, kw, vr, limit in _FIELDS
    }
    values["other_patient_ids"] = _other_patient_ids(ds)
    return _record(values, transfer_syntax)


def _other_patient_ids(ds: Dataset) -> tuple[tuple[str, str, str], ...]:
    """(Patient ID, Issuer of Patient ID, Type of Patient ID) of each item of the Other Patient
    IDs Sequence (PS3.3 C.7.1.1) that has an ID, once each: a C-FIND returns them (PS3.4 C.6.1.1.2)."""
    found = (
        (_text(item, "PatientID", 64), _text(item, "IssuerOfPatientID", 64), _text(item, "TypeOfPatientID", 16))
        for item in ds.get("OtherPatientIDsSequence") or ()
    )
    return tuple(dict.fromkeys(ids for ids in found if ids[0]))


def read_header(path: Path, fd: int | None = None) -> InstanceRecord:
    """Check every element of the Part 10 file at ``path`` and return its index record; ``fd``,
    if given, is the file already open for reading.

    Raises HeaderError(0xC000) for bytes that are not a complete DICOM data set pydicom can read
    in full: garbage, a truncated data set (an element whose declared length runs past the end
    of the file), one encoded otherwise than its transfer syntax says, or an element pydicom
    cannot convert to a value (an unknown VR, a US value of 3 bytes, a malformed sequence).
    Raises HeaderError(0xA900) when a required UID is missing or a UID is invalid.

    The common case — a well-formed little-endian file with plain ASCII index values — is
    checked by :func:`quick_values`, which walks every element header and converts nothing:
    several times faster than pydicom. Anything else pydicom reads and converts, and decides.
    """
    if fd is not None:
        size = os.fstat(fd).st_size
        quick = quick_values(fd, size)
    else:
        with open(path, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            quick = quick_values(fh.fileno(), size)
    if quick is None:
        with open(path, "rb") as fh:
            ds = _parse(fh, size)
    if quick is not None:
        record = _record(*quick)
    else:
        ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
        record = record_from_dataset(ds, ts)
    record.path, record.size = str(path), size
    return record


# What pydicom raises on bytes it cannot make sense of, at reading or at converting a value.
_UNREADABLE = (
    InvalidDicomError, BytesLengthException, EOFError, ValueError, TypeError, KeyError, AttributeError,
    IndexError, OSError, NotImplementedError, struct.error, zlib.error, RecursionError,
)  # fmt: skip
# VRs whose values pydicom keeps as bytes: a large one (not read at parsing) is not read to check it.
_BYTES_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW"})


class _Reader:
    """The file as pydicom reads it, noting where the end of the file cut a read short: pydicom
    takes an element header cut short (PS3.5 7.1: 8 or 12 bytes) for the end of the data set,
    without a word, and keeps a value cut short as it is. Only the first read that finds
    nothing at all is the data set's end."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.name = fh.name
        self.cut_at: int | None = None
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        data = self._fh.read(size)
        if len(data) < size:
            if (data or self._ended) and self.cut_at is None:
                self.cut_at = self._fh.tell() - len(data)
            self._ended = True
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()


def _parse(fh: BinaryIO, size: int) -> Dataset:
    reader = _Reader(fh)
    try:
        ds = dcmread(reader, defer_size=1024)  # type: ignore[arg-type]  # a file-like: read, seek, tell
        # Deferred values are skipped by seeking, so the parser ends past EOF when the sender
        # cut the dataset short; a complete one ends exactly at the file's size.
        end = fh.tell()
    except _UNREADABLE as exc:
        raise HeaderError(f"cannot parse dataset: {type(exc).__name__}: {exc}", 0xC000) from exc
    if end > size:
        raise HeaderError(f"dataset truncated: elements declare {end} bytes, {size} received", 0xC000)
    if reader.cut_at is not None:
        raise HeaderError(f"dataset truncated: an element at byte {reader.cut_at} runs past the end ({size} bytes)", 0xC000)
    _check_encoding(ds)
    try:
        _convert_all(ds)
    except _UNREADABLE as exc:
        raise HeaderError(f"cannot read an element's value: {type(exc).__name__}: {exc}", 0xC000) from exc
    return ds


def _check_encoding(ds: Dataset) -> None:
    """The data set must be encoded as its transfer syntax says (PS3.5 10): pydicom reads one
    that is not, with a warning (or reads an explicit VR element whose VR is not two capitals as
    implicit VR), but a peer the node sends it to may not."""
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", ""))) if hasattr(ds, "file_meta") else None
    if syntax is None or not syntax.is_transfer_syntax:
        return
    implicit = syntax.is_implicit_VR
    for elem in ds._dict.values():
        if isinstance(elem, RawDataElement) and (elem.is_implicit_VR != implicit or (elem.VR is None) != implicit):
            found = "implicit" if elem.VR is None else "explicit"
            raise HeaderError(f"({elem.tag >> 16:04X},{elem.tag & 0xFFFF:04X}) is in {found} VR, not as the transfer syntax {syntax} says", 0xC000)


def _convert_all(ds: Dataset) -> None:
    """Convert every element of ``ds`` and of its sequences' items, as a reader of all of them
    will; raises what pydicom raises. A large value pydicom keeps as bytes is left unread."""
    for tag, elem in list(ds._dict.items()):
        if isinstance(elem, RawDataElement) and elem.value is None:
            found: dict[str, Any] = {}
            raw_element_vr(elem, found, ds=ds)
            if found["VR"] in _BYTES_VRS:
                continue
        converted = ds[tag]
        if converted.VR == "SQ":
            for item in converted.value:
                _convert_all(item)


# -- the quick reader ---------------------------------------------------------------------------
#
# It walks the same structure pydicom's reader walks (PS3.10 7.1 preamble and File Meta group,
# PS3.5 7.1 data elements, 7.5 sequences and items, A.4 encapsulated Pixel Data) but accepts only
# what is unambiguous: every case where pydicom would guess, warn, switch encodings, search for a
# delimiter or decode a value through a character set is left to pydicom (``None``), so what it
# does accept, pydicom reads the same way, to the same end and the same values. It converts no
# value but checks every element (sequence items included) for what would make pydicom's
# conversion raise: a VR it does not know, a number VR's length that is not a whole number of
# values, a sequence whose items do not fill it exactly. (Text never raises: pydicom keeps what
# it cannot decode as bytes.) This costs a hundredth of converting every value with pydicom
# (figures in dicom_node.receive.handlers).

_HEAD = 1 << 20  # read at once; element headers further on (a rare case) are read one by one
_VR32 = frozenset(vr.encode() for vr in EXPLICIT_VR_LENGTH_32)
_VR16 = frozenset(vr.encode() for vr in EXPLICIT_VR_LENGTH_16)
_TAG_LENGTH = struct.Struct("<HHI")
_U32 = struct.Struct("<I")
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_DATA, _CHARSET = 0x7FE00010, 0x00080005
# Other Patient IDs Sequence, and the keys of its items the index keeps: tag → VR, longest kept.
_OTHER_PATIENT_IDS = 0x00101002
_OTHER_ID_KEYS = {0x00100020: (b"LO", 64), 0x00100021: (b"LO", 64), 0x00100022: (b"CS", 16)}
# Transfer syntaxes whose data set pydicom reads as Implicit (True) or Explicit (False) VR LE.
_SYNTAXES = {
    "1.2.840.10008.1.2": True,
    "1.2.840.10008.1.2.1": False,
    **dict.fromkeys(
        ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
         "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
         "1.2.840.10008.1.2.5"),
        False,
    ),
}  # fmt: skip
# Bytes per value of the VRs pydicom converts to numbers (and of implicit VR's ambiguous VRs that
# become US or SS): a length that is not a multiple makes it raise.
_WIDTH = {
    b"US": 2, b"SS": 2, b"UL": 4, b"SL": 4, b"FL": 4, b"FD": 8, b"SV": 8, b"UV": 8,
    b"US or SS": 2, b"US or SS or OW": 2, b"US or OW": 2,
}  # fmt: skip
_DICTIONARY = {tag: entry[0].encode() for tag, entry in DicomDictionary.items()}
_LUT_DATA = 0x00283006  # implicit VR: US or OW, by the value of LUT Descriptor
_CREATOR = re.compile(rb"[\x20-\x5b\x5d-\x7e]*\x00?")  # plain ASCII, one value
# Character sets in which a plain ASCII value decodes to the same text as in ASCII.
_ASCII_CHARSETS = frozenset({b"", b"ISO_IR 6", b"ISO_IR 100", b"ISO_IR 192"})
_WANTED = {tag_for_keyword(kw): (name, vr.encode(), limit) for name, kw, vr, limit in _FIELDS}
# Values pydicom decodes without a word (valid for their VR, PS3.5 6.2), padding included:
# pattern and longest encoded value.
_VALID = {
    b"UI": (re.compile(rb"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*\x00?"), 64),
    b"CS": (re.compile(rb"[A-Z0-9 _]*"), 16),
    b"DA": (re.compile(rb"[0-9]{4}(?:0[1-9]|1[0-2])(?:[0-2][0-9]|3[01])"), 8),
    b"TM": (re.compile(rb"(?:[01][0-9]|2[0-3])(?:[0-5][0-9](?:(?:60|[0-5][0-9])(?:\.[0-9]{1,6} ?)?)?)?"), 16),
    b"IS": (re.compile(rb" *[+-]?[0-9]+ *"), 12),
    b"LO": (re.compile(rb"[\x20-\x5b\x5d-\x7e]*"), 64),
    b"SH": (re.compile(rb"[\x20-\x5b\x5d-\x7e]*"), 16),
    b"PN": (re.compile(rb"[\x20-\x3c\x3e-\x5b\x5d-\x7e]*"), 64),  # one component group: no "="
}


class _Unsure(Exception):
    """Not a case the quick reader takes: pydicom reads the file."""


class _File:
    """The file's first bytes, and any other range on demand."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.head = os.pread(fd, min(size, _HEAD), 0)

    def header(self, pos: int) -> bytes:
        """The 8 to 12 bytes of an element header at ``pos``."""
        if pos + 12 <= len(self.head):
            return self.head[pos : pos + 12]
        return self.get(pos, max(8, min(12, self.size - pos)))

    def get(self, pos: int, length: int) -> bytes:
        if pos + length > self.size:
            raise _Unsure  # runs past the end: pydicom says how (truncated or not DICOM)
        if pos + length <= len(self.head):
            return self.head[pos : pos + length]
        return os.pread(self.fd, length, pos)


def quick_values(fd: int, size: int) -> tuple[dict[str, Any], str] | None:
    """The index values and transfer syntax of the Part 10 file open at ``fd``, or None where
    pydicom must read it (see above)."""
    try:
        return _quick(_File(fd, size))
    except (_Unsure, struct.error, UnicodeDecodeError, RecursionError):
        return None


def _quick(f: _File) -> tuple[dict[str, Any], str]:
    if f.get(128, 4) != b"DICM":
        raise _Unsure
    meta: dict[int, tuple[bytes, int, int]] = {}
    end = _elements(f, 132, None, implicit=False, wanted=meta, meta=True)
    group_length = meta.get(0x00020000)
    if group_length is None or group_length[2] != 4 or _U32.unpack(f.get(group_length[1], 4))[0] != end - 144:
        raise _Unsure
    ts = _value(f, meta, 0x00020010, b"UI")
    implicit = _SYNTAXES.get(ts)
    if implicit is None:
        raise _Unsure
    found: dict[int, tuple[bytes, int, int]] = {}
    others: list[dict[int, tuple[bytes, int, int]]] = []  # the Other Patient IDs Sequence's items
    if _elements(f, end, f.size, implicit, wanted=found, others=others) != f.size:
        raise _Unsure
    if _CHARSET in found:
        vr, pos, length = found[_CHARSET]
        if vr not in (b"CS", b"") or f.get(pos, length).rstrip(b" ") not in _ASCII_CHARSETS:
            raise _Unsure  # pydicom reads every later element by this value, as a CS
    values: dict[str, Any] = {}
    for tag, (name, vr, limit) in _WANTED.items():
        text = _value(f, found, tag, vr, implicit)
        if vr == b"IS":
            values[name] = int(text) if text.strip() else None
        else:
            values[name] = text.strip()[:limit]
    values["other_patient_ids"] = _quick_other_ids(f, others, implicit)
    return values, ts


def _quick_other_ids(
    f: _File, items: list[dict[int, tuple[bytes, int, int]]], implicit: bool
) -> tuple[tuple[str, str, str], ...]:
    """What :func:`_other_patient_ids` makes of the items, as pydicom would read them."""
    found: list[tuple[str, str, str]] = []
    for item in items:
        if _CHARSET in item:
            raise _Unsure  # an item's own character set
        patient_id, issuer, kind = (
            _value(f, item, tag, vr, implicit).strip()[:limit] for tag, (vr, limit) in _OTHER_ID_KEYS.items()
        )
        found.append((patient_id, issuer, kind))
    return tuple(dict.fromkeys(ids for ids in found if ids[0]))


def _value(f: _File, found: dict[int, tuple[bytes, int, int]], tag: int, vr: bytes, implicit: bool = False) -> str:
    """A single-valued, valid, ASCII value as pydicom decodes it (trailing NULs and spaces
    removed); "" if absent."""
    if tag not in found:
        return ""
    element_vr, pos, length = found[tag]
    if not implicit and element_vr != vr:
        raise _Unsure  # pydicom would decode it by another VR
    raw = f.get(pos, length)
    pattern, longest = _VALID[vr]
    if length and (length > longest or not pattern.fullmatch(raw)):
        raise _Unsure
    return raw.decode("ascii").rstrip("\x00 ")


def _elements(
    f: _File,
    pos: int,
    end: int | None,
    implicit: bool,
    wanted: dict[int, tuple[bytes, int, int]] | None = None,
    meta: bool = False,
    item: bool = False,
    others: list[dict[int, tuple[bytes, int, int]]] | None = None,
) -> int:
    """Walk a data set from ``pos`` to ``end`` (None: to its item delimiter; with ``meta``: to
    the first element outside group 0002) and return where it ended. Elements of interest are
    noted in ``wanted`` as (VR, value position, length); with ``others``, those of each item of
    an Other Patient IDs Sequence there, one dict per item."""
    first = True
    creators: dict[int, tuple[int, int]] = {}  # private creator elements: (value position, length)
    while end is None or pos < end:
        if meta and (pos + 8 > f.size or f.get(pos, 2) != b"\x02\x00"):
            return pos
        head = f.header(pos)
        group, elem, length = _TAG_LENGTH.unpack_from(head)
        tag = group << 16 | elem
        if tag == _ITEM_END and end is None and item:
            if length:
                raise _Unsure
            return pos + 8
        if group in (0x0000, 0xFFFE):  # a command set or a stray delimiter: pydicom's call
            raise _Unsure
        vr = head[4:6]
        looks_explicit = 0x40 < vr[0] < 0x5B and 0x40 < vr[1] < 0x5B
        if first and looks_explicit == implicit and not (implicit and item):
            raise _Unsure  # pydicom would switch encodings here
        first = False
        if implicit:
            start = pos + 8
            vr = b""
        elif vr in _VR16:
            length = head[6] | head[7] << 8
            start = pos + 8
        elif vr in _VR32 and len(head) == 12:
            length = _U32.unpack_from(head, 8)[0]
            start = pos + 12
        else:
            raise _Unsure
        if length == 0xFFFFFFFF:
            if tag == _PIXEL_DATA and (implicit or vr in (b"OB", b"OW")) and not item:
                pos = _encapsulated(f, start)
            elif vr == b"SQ" or (implicit and _dictionary_vr(tag) == "SQ"):
                pos = _sequence(f, start, implicit, others if tag == _OTHER_PATIENT_IDS else None)
            else:
                raise _Unsure
            continue
        if wanted is not None and (meta or tag in _WANTED or tag in _OTHER_ID_KEYS or tag == _CHARSET):
            if tag in wanted:
                raise _Unsure
            wanted[tag] = (vr, start, length)
        if not meta:
            if group & 1 and elem <= 0xFF:
                creators[tag] = (start, length)
            kind = vr if vr and vr != b"UN" else _implied_vr(f, tag, implicit, creators)
            width = _WIDTH.get(kind)
            if width is not None and length % width:
                raise _Unsure  # pydicom: BytesLengthException
            if kind == b"SQ":
                if vr == b"UN":
                    raise _Unsure  # a sequence sent as UN: pydicom reads it its own way
                _items(f, start, start + length, implicit, others if tag == _OTHER_PATIENT_IDS else None)
        pos = start + length
    if pos != end:
        raise _Unsure
    return pos


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        raise _Unsure from None


def _implied_vr(f: _File, tag: int, implicit: bool, creators: dict[int, tuple[int, int]]) -> bytes:
    """The VR pydicom converts an element by when the stream gives none (implicit VR) or UN
    (pydicom's ``replace_un_with_known_vr``): the dictionary's, or for a private element the
    private dictionary's under its block's creator (PS3.5 7.8.1)."""
    group, elem = tag >> 16, tag & 0xFFFF
    if group & 1:
        if 0x10 <= elem <= 0xFF:
            return b"LO"
        slot = creators.get(group << 16 | elem >> 8) if elem & 0xFF00 else None
        if slot is None:
            return b"UN"
        creator = f.get(*slot)
        if not _CREATOR.fullmatch(creator):
            raise _Unsure
        try:
            return private_dictionary_VR(tag, creator.decode("ascii").rstrip("\x00 ")).encode()
        except KeyError:
            return b"UN"
    if tag == _LUT_DATA and implicit:
        raise _Unsure
    vr = _DICTIONARY.get(tag)
    if vr is not None:
        return vr
    try:
        return dictionary_VR(tag).encode()  # repeating groups (PS3.5 7.6)
    except KeyError:
        return b"UL" if elem == 0 else b"UN"


_Items = list[dict[int, tuple[bytes, int, int]]] | None  # where an item's elements of interest go


def _item(f: _File, pos: int, implicit: bool, collect: _Items = None) -> int:
    """The sequence item at ``pos`` (PS3.5 7.5), up to and past its end; raises _Unsure if
    something else is there. With ``collect``, its elements of interest are appended to it."""
    tag_group, tag_elem, length = _TAG_LENGTH.unpack(f.get(pos, 8))
    if tag_group << 16 | tag_elem != _ITEM:
        raise _Unsure
    wanted: dict[int, tuple[bytes, int, int]] | None = None if collect is None else {}
    end = None if length == 0xFFFFFFFF else pos + 8 + length
    pos = _elements(f, pos + 8, end, implicit, wanted=wanted, item=True)
    if collect is not None and wanted is not None:
        collect.append(wanted)
    return pos


def _items(f: _File, pos: int, end: int, implicit: bool, collect: _Items = None) -> None:
    """Items of a defined-length sequence, which must fill it exactly."""
    while pos < end:
        pos = _item(f, pos, implicit, collect)
    if pos != end:
        raise _Unsure


def _sequence(f: _File, pos: int, implicit: bool, collect: _Items = None) -> int:
    """Items of an undefined-length sequence, up to and past its delimiter."""
    while True:
        tag_group, tag_elem, length = _TAG_LENGTH.unpack(f.get(pos, 8))
        if tag_group << 16 | tag_elem == _SEQUENCE_END:
            if length:
                raise _Unsure
            return pos + 8
        pos = _item(f, pos, implicit, collect)


def _encapsulated(f: _File, pos: int) -> int:
    """Fragments of encapsulated Pixel Data, up to and past the sequence delimiter."""
    while True:
        tag_group, tag_elem, length = _TAG_LENGTH.unpack(f.get(pos, 8))
        tag = tag_group << 16 | tag_elem
        if tag == _SEQUENCE_END:
            if length:
                raise _Unsure
            return pos + 8
        if tag != _ITEM or length == 0xFFFFFFFF:
            raise _Unsure
        pos += 8 + length
