"""De-identification on the way out: PS3.15 Annex E Basic Application Level Confidentiality
Profile, applied by dicom-anonymizer, with the node's keyed pseudonyms for UIDs and the patient.

Why dicom-anonymizer: it encodes Table E.1-1 itself, action code by action code (D, Z, X, U,
Z/D, X/Z, X/D, X/Z/D, X/Z/U*), one table per edition of the standard (2023, 2024b, 2026c), and
removes private tags as the profile asks; ``deid`` leaves the profile to a recipe the user
writes, and dicognito applies its own rules, not the table. What it lacks is made here:

* UIDs: its U action draws a random UID per process, so the same study would get another UID
  on each forward. Every UID value that is not a registered DICOM UID (SOP classes, transfer
  syntaxes and coding schemes stay) is replaced by the destination's keyed pseudonym instead,
  wherever it is — sequences included — so references inside SEG/SR and from one instance to
  another stay consistent (Annex E "internally consistent").
* Patient ID/Name: the same keyed pseudonym on every forward (same patient → same pseudonym).
* Options of Table E.1-1 (``retain_*``): those columns' attributes are kept (action K).
* Attributes E.1 asks for afterwards: Patient Identity Removed YES, De-identification Method
  and its code sequence (CID 7050).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from dicomanonymizer.simpledicomanonymizer import (  # type: ignore[import-untyped]  # no py.typed
    anonymize_dataset,
    initialize_actions,
    keep,
)
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from dicom_node.deid.keys import PseudonymKeys
from dicom_node.deid.settings import DeidentifySettings
from dicom_node.errors import PermanentError

__all__ = ["IDENTITY", "BurnedInAnnotationError", "deidentify", "is_registered_uid"]

log = logging.getLogger(__name__)

TABLE_EDITION = "dicomfields_2026c"

# Kept with each pseudonymous study, put back on what returns (Patient and General Study modules).
IDENTITY = (
    "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "OtherPatientIDs", "AccessionNumber", "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName",
    "StudyDescription", "InstitutionName",
)  # fmt: skip

_Tag = tuple[int, int]

# Table E.1-1 option columns: the attributes each option keeps (K) rather than the basic action.
_OPTION_KEEPS: dict[str, tuple[_Tag, ...]] = {
    "retain_longitudinal_full_dates": (),  # every DA/DT/TM attribute: see _date_tags
    "retain_patient_characteristics": (
        (0x0010, 0x0040),
        (0x0010, 0x1010),
        (0x0010, 0x1020),
        (0x0010, 0x1030),
        (0x0010, 0x2160),
        (0x0010, 0x21A0),
        (0x0010, 0x21C0),
        (0x0010, 0x2203),
        (0x0038, 0x0500),
        (0x0010, 0x1022),
    ),  # Sex, Age, Size, Weight, Ethnic Group, Smoking Status, Pregnancy Status, Sex Neutered, Patient State, BMI
    "retain_device_identity": (
        (0x0018, 0x1000),
        (0x0018, 0x1002),
        (0x0018, 0x1004),
        (0x0018, 0x1007),
        (0x0018, 0x1008),
        (0x0018, 0x700A),
        (0x0018, 0x700C),
        (0x0008, 0x1010),
        (0x3010, 0x002D),
        (0x0018, 0x1005),
    ),  # Device Serial Number, Device UID, Plate ID, Cassette ID, Gantry ID, Detector ID, Station Name, …
}

_OPTION_CODES = {
    "retain_longitudinal_full_dates": (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    "retain_patient_characteristics": (
        "113108",
        "Retain Patient Characteristics Option",
    ),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
}


class BurnedInAnnotationError(PermanentError):
    """An instance marked BurnedInAnnotation YES for a destination that does not allow it."""


def is_registered_uid(value: str) -> bool:
    """A UID of the DICOM registry (SOP class, transfer syntax, coding scheme…): not PHI."""
    return UID(value).name != value


def _date_tags(actions: dict[Any, Callable[..., None]]) -> list[Any]:
    from pydicom.datadict import dictionary_VR

    tags = []
    for tag in actions:
        if len(tag) != 2:
            continue
        try:
            if dictionary_VR((tag[0] << 16) | tag[1]) in ("DA", "DT", "TM"):
                tags.append(tag)
        except KeyError:
            continue
    return tags


def _rules(
    options: Iterable[str], patient_id: str, patient_name: str
) -> dict[Any, Callable[..., None]]:
    actions = initialize_actions(TABLE_EDITION)
    for tag, action in list(actions.items()):
        # U and X/Z/U* (sequences of references): kept here, their UIDs replaced below by keyed
        # pseudonyms wherever they are, so a reference still points at the instance it named.
        if action.__name__ in ("replace_UID", "delete_or_empty_or_replace_UID"):
            actions[tag] = keep
    for option in options:
        for tag in _OPTION_KEEPS[option]:
            actions[tag] = keep
        if option == "retain_longitudinal_full_dates":
            for tag in _date_tags(actions):
                actions[tag] = keep

    def set_value(value: str) -> Callable[[Dataset, Any], None]:
        def apply(dataset: Dataset, tag: Any) -> None:
            if tag in dataset:
                dataset[tag].value = value

        return apply

    actions[(0x0010, 0x0020)] = set_value(patient_id)
    actions[(0x0010, 0x0010)] = set_value(patient_name)
    return actions


def _apply_nested(dataset: Dataset, rules: dict[Any, Callable[..., None]]) -> None:
    """The table on the data set and on every item of the sequences it keeps: dicom-anonymizer
    acts on top-level attributes only, and a kept sequence (X/Z/U*, a retained option's) could
    otherwise carry a name or an ID inside."""
    anonymize_dataset(dataset, None, True, lambda: dict(rules))
    for element in list(dataset):
        if element.VR == "SQ" and element.value:
            for item in element.value:
                _apply_nested(item, rules)


def _pseudonymise_uids(dataset: Dataset, keys: PseudonymKeys) -> None:
    def visit(ds: Dataset, element: DataElement) -> None:
        if element.VR != "UI" or not element.value:
            return
        values = list(element.value) if element.VM > 1 else [element.value]
        new = [v if is_registered_uid(str(v)) else keys.uid(str(v)) for v in values]
        element.value = new if element.VM > 1 else new[0]

    dataset.walk(visit)


def deidentify(
    dataset: Dataset, keys: PseudonymKeys, settings: DeidentifySettings
) -> str:
    """De-identify ``dataset`` in place; returns its pseudonymous Study Instance UID.

    Raises BurnedInAnnotationError for BurnedInAnnotation YES unless allowed.
    """
    if (
        str(dataset.get("BurnedInAnnotation", "")).upper() == "YES"
        and not settings.allow_burned_in
    ):
        raise BurnedInAnnotationError(
            "BurnedInAnnotation is YES: not sent to a de-identifying destination"
        )
    identity = {
        kw: str(dataset.get(kw)) for kw in IDENTITY if dataset.get(kw) not in (None, "")
    }
    pseudo_id = keys.patient_id(str(dataset.get("PatientID", "")))
    rules = _rules(
        settings.options, pseudo_id, f"{pseudo_id}^"
    )  # PN: family name only (PS3.5 6.2.1.2)
    _apply_nested(dataset, rules)
    _pseudonymise_uids(dataset, keys)
    if (
        "file_meta" in dataset.__dict__
        and dataset.file_meta is not None
        and "SOPInstanceUID" in dataset
    ):
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = (
        "PS3.15 E.1 Basic Profile, dicom-anonymizer 2026c"  # LO: 64 at most
    )
    codes = [("113100", "Basic Application Confidentiality Profile")] + [
        _OPTION_CODES[o] for o in settings.options
    ]
    dataset.DeidentificationMethodCodeSequence = Sequence(
        [_code(value, meaning) for value, meaning in codes]
    )
    study = str(dataset.StudyInstanceUID)
    keys.remember_study(study, identity)
    return study


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = (
        value,
        "DCM",
        meaning,
    )
    return item
