"""The quick header reader (store.header.quick_values) must agree with pydicom on every file it
takes: same index values, same transfer syntax, same verdict; everything else it leaves to
pydicom. Checked on pydicom's own test files, on value and structure variants, and on
thousands of truncated and corrupted copies."""

from __future__ import annotations

import logging
import os
import random
import warnings
from pathlib import Path
from typing import Any

import pydicom.data
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from dicom_node.store import header
from dicom_node.synthetic import StudySpec, ct_series, write_series

Outcome = tuple[Any, ...]


def _pydicom(path: Path) -> Outcome:
    """What read_header answered before the quick reader existed."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = header._parse(fh, size)
            ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
            record = header.record_from_dataset(ds, ts)
    except header.HeaderError as exc:
        return ("refused", exc.status)
    return ("ok", _indexed(record), ts)


def _quick(path: Path) -> Outcome | None:
    with open(path, "rb") as fh:
        quick = header.quick_values(fh.fileno(), os.fstat(fh.fileno()).st_size)
    if quick is None:
        return None
    try:
        record = header._record(*quick)
    except header.HeaderError as exc:
        return ("refused", exc.status)
    return ("ok", _indexed(record), quick[1])


def _indexed(record: header.InstanceRecord) -> dict[str, Any]:
    """What the index keeps of ``record``."""
    return {name: getattr(record, name) for name in [*(name for name, *_ in header._FIELDS), "other_patient_ids"]}


def _agrees(path: Path) -> bool:
    """True when the quick reader took the file (and agrees); False when it left it."""
    quick = _quick(path)
    if quick is None:
        return False
    assert quick == _pydicom(path), path.name
    return True


def _pydicom_test_files() -> list[Path]:
    """The test files pydicom ships (those it would download are not needed)."""
    return sorted((Path(pydicom.data.__file__).parent / "test_files").glob("*.dcm"))


@pytest.fixture(autouse=True)
def _quiet_pydicom() -> Any:
    logging.getLogger("pydicom").disabled = True
    yield
    logging.getLogger("pydicom").disabled = False


def test_agrees_with_pydicom_on_its_test_files():
    files = _pydicom_test_files()
    taken = [p.name for p in files if _agrees(p)]
    # Big endian, deflated, no File Meta, truncated: pydicom's. Most of the rest: ours.
    assert len(taken) >= len(files) // 2
    assert "CT_small.dcm" in taken and "MR_small_implicit.dcm" in taken and "JPEG2000.dcm" in taken
    assert not {"MR_small_bigendian.dcm", "image_dfl.dcm", "no_meta.dcm", "MR_truncated.dcm"} & set(taken)


def _save(ds: Dataset, path: Path, syntax: str = ExplicitVRLittleEndian) -> Path:
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path, enforce_file_format=True, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True)
    return path


@pytest.fixture
def ct(tmp_path: Path) -> Dataset:
    return ct_series(StudySpec(), shape=(1, 8, 8), lesion_radius=None)[0]


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_common_files_are_taken_and_agree(ct, tmp_path, syntax):
    assert _agrees(_save(ct, tmp_path / "ct.dcm", syntax))


@pytest.mark.parametrize(
    "keyword, value",
    [
        ("PatientName", "Doe^John^^^"),
        ("PatientName", "Müller^Jörg"),  # not ASCII: pydicom decodes it
        ("PatientName", "Yamada^Tarou=山田^太郎"),
        ("PatientName", ["A^B", "C^D"]),
        ("PatientName", ""),
        ("PatientID", "  padded  "),
        ("PatientID", "back\\slash"),
        ("SeriesNumber", "+12"),
        ("SeriesNumber", " 7 "),
        ("SeriesNumber", "1.5"),
        ("InstanceNumber", ""),
        ("StudyTime", "093000.123456"),
        ("StudyTime", "25"),
        ("StudyDate", "20241301"),
        ("Modality", "ct"),
        ("SOPInstanceUID", "1.2.03.4"),
        ("SOPInstanceUID", "../../x"),
        ("SpecificCharacterSet", "ISO_IR 192"),
        ("SpecificCharacterSet", "ISO 2022 IR 87"),
        ("AccessionNumber", "A" * 16),
        ("AccessionNumber", "A" * 17),
    ],
)
def test_value_variants_agree(ct, tmp_path, keyword, value):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        setattr(ct, keyword, value)
        path = _save(ct, tmp_path / "ct.dcm")
    _agrees(path)


def test_missing_uid_is_refused_alike(ct, tmp_path):
    del ct.StudyInstanceUID
    path = _save(ct, tmp_path / "ct.dcm")
    assert _agrees(path)
    assert _quick(path) == ("refused", 0xA900)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_nested_sequences_of_defined_and_undefined_length_agree(ct, tmp_path, syntax):
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = ct.SOPClassUID, "1.2.3.4"
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator, inner.CodeMeaning = "113691", "DCM", "IEC Body Dosimetry Phantom"
    item.PurposeOfReferenceCodeSequence = Sequence([inner])
    ct.ReferencedImageSequence = Sequence([item, Dataset()])
    ct.SourceImageSequence = Sequence([item])
    for name, undefined in (("ReferencedImageSequence", True), ("SourceImageSequence", False)):
        seq = ct[name]
        seq.is_undefined_length = undefined
        for entry in seq.value:
            entry.is_undefined_length_sequence_item = undefined
    assert _agrees(_save(ct, tmp_path / "ct.dcm", syntax))


def test_encapsulated_pixel_data_agrees(ct, tmp_path):
    ct.compress(RLELossless)
    assert _agrees(_save(ct, tmp_path / "rle.dcm", RLELossless))


def test_truncated_and_corrupted_copies_agree_or_are_left_to_pydicom(tmp_path):
    rng = random.Random(20240611)
    sources = [p for p in _pydicom_test_files() if _quick(p) is not None]
    sources += write_series(ct_series(StudySpec(), shape=(2, 16, 16), lesion_radius=None), tmp_path / "ct")
    copy, taken = tmp_path / "copy.dcm", 0
    for _ in range(1500):
        data = bytearray(rng.choice(sources).read_bytes())
        reach = min(len(data), rng.choice((400, 3000, 65536)))
        if rng.random() < 0.3:
            data = data[: rng.randrange(132, len(data))]
        elif rng.random() < 0.7:
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(132, reach)] = rng.randrange(256)
        else:
            at = rng.randrange(132, reach)
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        copy.write_bytes(data)
        taken += _agrees(copy)
    assert taken > 100  # corrupted values inside elements still parse; the test has teeth


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_other_patient_ids_are_taken_and_agree(ct, tmp_path, syntax):
    items = []
    for other, issuer in (("MRN-1", "HOSP_A"), ("MRN-2", ""), ("MRN-1", "HOSP_A"), ("", "NO_ID")):
        item = Dataset()
        item.PatientID, item.IssuerOfPatientID, item.TypeOfPatientID = other, issuer, "TEXT"
        items.append(item)
    ct.OtherPatientIDsSequence = Sequence(items)
    path = _save(ct, tmp_path / "ct.dcm", syntax)
    assert _agrees(path)
    assert header.read_header(path).other_patient_ids == (("MRN-1", "HOSP_A", "TEXT"), ("MRN-2", "", "TEXT"))


def test_a_truncated_file_is_left_to_pydicom_which_refuses_it(ct, tmp_path):
    path = _save(ct, tmp_path / "ct.dcm")
    path.write_bytes(path.read_bytes()[:-10])
    assert _quick(path) is None
    with pytest.raises(header.HeaderError) as refused:
        header.read_header(path)
    assert refused.value.status == 0xC000


def test_read_header_matches_pydicom_through_either_reader(ct, tmp_path):
    quick_path = _save(ct, tmp_path / "quick.dcm")
    ct.PatientName = "Müller"
    slow_path = _save(ct, tmp_path / "slow.dcm")
    assert _quick(quick_path) is not None and _quick(slow_path) is None
    for path in (quick_path, slow_path):
        record = header.read_header(path)
        assert (record.path, record.size) == (str(path), path.stat().st_size)
        assert record.sop_instance_uid == dcmread(path).SOPInstanceUID
