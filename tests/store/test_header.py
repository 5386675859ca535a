"""read_header's verdicts (issue 12): a UID is kept whole or refused, and a file it takes is one
pydicom reads in full — what a reader of every element (the router) will do with it."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_node.receive.wire import file_meta
from dicom_node.routing.rules import series_attributes
from dicom_node.store.header import HeaderError, read_header
from dicom_node.synthetic import StudySpec, ct_series
from tests.receive.mutate import corpus


@pytest.fixture(autouse=True)
def _quiet_pydicom() -> Iterator[None]:
    logging.getLogger("pydicom").disabled = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's, on the invalid values written on purpose
        yield
    logging.getLogger("pydicom").disabled = False


@pytest.fixture
def ct() -> Dataset:
    return ct_series(StudySpec(), shape=(1, 8, 8), lesion_radius=None)[0]


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "SOPClassUID"])
def test_a_uid_over_64_characters_is_refused_not_cut(ct, tmp_path, keyword):
    setattr(ct, keyword, "1.2.826.0.1.3680043.8.498." + "1" * 38 + ".2")
    with pytest.raises(HeaderError) as refused:
        read_header(_save(ct, tmp_path / "long.dcm"))
    assert refused.value.status == 0xA900
    assert keyword in refused.value.reason and "66 characters" in refused.value.reason


@pytest.mark.parametrize("uid", ["1.2.840.abc", "1..2", "1.2.", "1.2.3\\4.5"])
def test_a_uid_that_is_not_digits_and_dots_is_refused(ct, tmp_path, uid):
    ct.SeriesInstanceUID = uid
    with pytest.raises(HeaderError) as refused:
        read_header(_save(ct, tmp_path / "bad.dcm"))
    assert refused.value.status == 0xA900


def test_a_uid_with_a_leading_zero_component_is_kept_whole(ct, tmp_path):
    """PS3.5 9.1 forbids it, but it is common and neither collides nor steers a path."""
    ct.SOPInstanceUID = "1.2.03.4"
    assert read_header(_save(ct, tmp_path / "zero.dcm")).sop_instance_uid == "1.2.03.4"


def test_every_instance_read_header_takes_is_read_in_full_by_pydicom(tmp_path):
    """Offline, on another seed than the network test: whatever read_header accepts, pydicom
    reads element by element, as the router reads a series' first instance."""
    path, taken = tmp_path / "mutant.dcm", 0
    for mutant in corpus(seed=7, per_kind=40):
        path.write_bytes(file_meta(mutant.sop_class, mutant.sop_instance, mutant.transfer_syntax) + mutant.data_set)
        try:
            read_header(path)
        except HeaderError:
            continue
        series_attributes(dcmread(path, stop_before_pixels=True), "")
        for elem in dcmread(path).iterall():
            elem.value  # noqa: B018 - converting the value is the point
        taken += 1
    assert taken > 50  # damage that leaves an instance readable is taken: the test has teeth
