"""De-identification (PS3.15 Annex E Basic profile) and re-identification, without a network."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from dicom_node.deid.keys import PseudonymKeys
from dicom_node.deid.profile import (
    BurnedInAnnotationError,
    deidentify,
    is_registered_uid,
)
from dicom_node.deid.reidentify import reidentify
from dicom_node.deid.settings import DeidentifySettings
from dicom_node.store.index import make_engine
from dicom_node.synthetic import StudySpec, ct_series

BASIC = DeidentifySettings.model_validate("basic")

# Table E.1-1 rows a hospital checks first (action in the Basic profile): none may keep its value.
ANNEX_E_CHECKS = (
    "PatientName",  # D
    "PatientID",  # D
    "PatientBirthDate",  # Z
    "OtherPatientIDs",  # X
    "AccessionNumber",  # Z
    "StudyID",  # Z
    "ReferringPhysicianName",  # Z
    "InstitutionName",  # X/Z/D
    "StudyDescription",  # X
    "StudyDate",  # Z
    "StudyTime",  # Z
    "ContentDate",  # Z/D
    "StudyInstanceUID",  # U
    "SeriesInstanceUID",  # U
    "SOPInstanceUID",  # U
    "FrameOfReferenceUID",  # U
)


def identifying_leftovers(original: Dataset, deidentified: Dataset) -> list[str]:
    """The checked attributes whose original (non-empty) value is still there."""
    return [
        kw for kw in ANNEX_E_CHECKS
        if original.get(kw) not in (None, "") and str(deidentified.get(kw, "")) == str(original.get(kw))
    ]  # fmt: skip


@pytest.fixture
def keys(tmp_path: Path) -> PseudonymKeys:
    return PseudonymKeys(make_engine(f"sqlite:///{tmp_path / 'index.sqlite'}"), "cloud")


def _uids(ds: Dataset) -> set[str]:
    found: set[str] = set()
    ds.walk(lambda _d, e: found.add(str(e.value)) if e.VR == "UI" and e.value else None)
    return found


def test_basic_profile_removes_identity_and_replaces_every_instance_uid(
    keys: PseudonymKeys,
) -> None:
    study = StudySpec(
        patient_id="MRN-4711",
        patient_name="DOE^JANE",
        birth_date="19610203",
        accession="A99",
    )
    originals = ct_series(study, shape=(2, 16, 16), lesion_radius=None)
    originals[0].OtherPatientIDs = "OLD-1"
    originals[0].InstitutionName = "St Elsewhere"
    originals[0].ReferencedImageSequence = Sequence([Dataset()])
    originals[0].ReferencedImageSequence[0].ReferencedSOPClassUID = originals[
        1
    ].SOPClassUID
    originals[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID = originals[
        1
    ].SOPInstanceUID
    originals[0].ReferencedImageSequence[
        0
    ].PatientName = "NESTED^NAME"  # nothing hides in a kept sequence
    before = [_uids(ds) for ds in originals]
    copies = [copy.deepcopy(ds) for ds in originals]
    for ds in copies:
        deidentify(ds, keys, BASIC)
    first, second = copies
    # Table E.1-1, field by field: Patient's Name/ID replaced, birth date emptied, others removed
    assert first.PatientID.startswith("ANON") and first.PatientID == second.PatientID
    assert first.PatientName.family_name == first.PatientID
    assert first.PatientBirthDate in ("", "00010101")
    assert identifying_leftovers(originals[0], first) == []
    assert first.PatientIdentityRemoved == "YES"
    assert first.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    # every UID that is not a registered one is new, and references stay consistent
    for old, new in zip(before, map(_uids, copies), strict=True):
        instance_uids = {u for u in old if not is_registered_uid(u)}
        assert instance_uids and not instance_uids & new
    assert first.StudyInstanceUID == second.StudyInstanceUID != study.study_uid
    assert (
        first.ReferencedImageSequence[0].ReferencedSOPInstanceUID
        == second.SOPInstanceUID
    )
    assert str(first.ReferencedImageSequence[0].PatientName) != "NESTED^NAME"
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
    assert first.SOPClassUID == originals[0].SOPClassUID  # a registered UID stays


def test_same_patient_gets_the_same_pseudonym_in_every_study_and_process(
    tmp_path: Path, keys: PseudonymKeys
) -> None:
    a = ct_series(StudySpec(patient_id="MRN-1"), shape=(1, 8, 8), lesion_radius=None)[0]
    b = ct_series(StudySpec(patient_id="MRN-1"), shape=(1, 8, 8), lesion_radius=None)[0]
    deidentify(a, keys, BASIC)
    again = PseudonymKeys(
        keys.engine, "cloud"
    )  # another process: the key comes from the index
    deidentify(b, again, BASIC)
    assert a.PatientID == b.PatientID and a.StudyInstanceUID != b.StudyInstanceUID
    other = PseudonymKeys(
        keys.engine, "other-cloud"
    )  # another destination cannot link them
    c = ct_series(StudySpec(patient_id="MRN-1"), shape=(1, 8, 8), lesion_radius=None)[0]
    deidentify(c, other, BASIC)
    assert c.PatientID != a.PatientID


def test_retain_full_dates_option_keeps_dates(keys: PseudonymKeys) -> None:
    ds = ct_series(
        StudySpec(study_date="20250317"), shape=(1, 8, 8), lesion_radius=None
    )[0]
    deidentify(ds, keys, DeidentifySettings(options=["retain_longitudinal_full_dates"]))
    assert ds.StudyDate == "20250317"
    assert [c.CodeValue for c in ds.DeidentificationMethodCodeSequence] == [
        "113100",
        "113106",
    ]


def test_burned_in_annotation_yes_is_refused_unless_allowed(
    keys: PseudonymKeys,
) -> None:
    ds = ct_series(shape=(1, 8, 8), lesion_radius=None)[0]
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(BurnedInAnnotationError, match="BurnedInAnnotation is YES"):
        deidentify(copy.deepcopy(ds), keys, BASIC)
    deidentify(ds, keys, DeidentifySettings(allow_burned_in=True))
    assert ds.PatientIdentityRemoved == "YES"


def test_a_result_made_from_the_pseudonymous_study_is_mapped_back(
    keys: PseudonymKeys,
) -> None:
    study = StudySpec(
        patient_id="MRN-77", patient_name="ROE^RICHARD", accession="ACC77"
    )
    original = ct_series(study, shape=(1, 8, 8), lesion_radius=None)[0]
    sent = copy.deepcopy(original)
    deidentify(sent, keys, BASIC)
    seg = (
        Dataset()
    )  # what the cloud makes: same study, a new series referencing the sent image
    seg.PatientID, seg.PatientName, seg.StudyInstanceUID = (
        sent.PatientID,
        sent.PatientName,
        sent.StudyInstanceUID,
    )
    seg.SeriesInstanceUID, seg.SOPInstanceUID = generate_uid(), generate_uid()
    seg.FrameOfReferenceUID = sent.FrameOfReferenceUID
    ref = Dataset()
    ref.SeriesInstanceUID = sent.SeriesInstanceUID
    ref.ReferencedInstanceSequence = Sequence([Dataset()])
    ref.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID = sent.SOPInstanceUID
    seg.ReferencedSeriesSequence = Sequence([ref])
    own_uid = seg.SOPInstanceUID
    assert reidentify(seg, keys)
    assert seg.StudyInstanceUID == original.StudyInstanceUID
    assert (
        seg.PatientID == "MRN-77"
        and str(seg.PatientName) == "ROE^RICHARD"
        and seg.AccessionNumber == "ACC77"
    )
    assert seg.FrameOfReferenceUID == original.FrameOfReferenceUID
    assert (
        seg.ReferencedSeriesSequence[0].SeriesInstanceUID == original.SeriesInstanceUID
    )
    assert (
        seg.ReferencedSeriesSequence[0]
        .ReferencedInstanceSequence[0]
        .ReferencedSOPInstanceUID
        == original.SOPInstanceUID
    )
    assert seg.SOPInstanceUID == own_uid  # the cloud's own UIDs stay


def test_an_object_that_references_nothing_of_ours_is_left_alone(
    keys: PseudonymKeys,
) -> None:
    ds = ct_series(shape=(1, 8, 8), lesion_radius=None)[0]
    before = ds.to_json_dict()
    assert not reidentify(ds, keys)
    assert ds.to_json_dict() == before
