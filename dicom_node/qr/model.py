"""Query/Retrieve information models (PS3.4 C.6): which levels each model has, its unique key
per level, and the FIND/MOVE/GET SOP classes that name it.

Patient Root and Study Root are the models viewers and PACS use; Patient/Study Only (retired,
C.6.3) costs nothing more, since it is Patient Root limited to two levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from pynetdicom import sop_class as sc

__all__ = ["Level", "UNIQUE_KEY", "InformationModel", "MODELS", "model_for", "QRStatus", "QRError"]


class Level(StrEnum):
    """Query/Retrieve Level (0008,0052), top to bottom."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"

    @property
    def depth(self) -> int:
        return list(Level).index(self)


UNIQUE_KEY: dict[Level, str] = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}


@dataclass(frozen=True)
class InformationModel:
    """One Q/R information model: its levels (top first) and SOP classes per DIMSE service."""

    name: str
    levels: tuple[Level, ...]
    find: str
    move: str
    get: str

    def unique_keys_above(self, level: Level) -> list[str]:
        """Unique keys an identifier must carry as single values above ``level`` (C.4.1.2.2.1)."""
        return [UNIQUE_KEY[lv] for lv in self.levels[: self.levels.index(level)]]


MODELS: dict[str, InformationModel] = {
    "patient": InformationModel(
        "patient",
        (Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE),
        sc.PatientRootQueryRetrieveInformationModelFind,
        sc.PatientRootQueryRetrieveInformationModelMove,
        sc.PatientRootQueryRetrieveInformationModelGet,
    ),
    "study": InformationModel(
        "study",
        (Level.STUDY, Level.SERIES, Level.IMAGE),
        sc.StudyRootQueryRetrieveInformationModelFind,
        sc.StudyRootQueryRetrieveInformationModelMove,
        sc.StudyRootQueryRetrieveInformationModelGet,
    ),
    "patient_study_only": InformationModel(
        "patient_study_only",
        (Level.PATIENT, Level.STUDY),
        sc.PatientStudyOnlyQueryRetrieveInformationModelFind,
        sc.PatientStudyOnlyQueryRetrieveInformationModelMove,
        sc.PatientStudyOnlyQueryRetrieveInformationModelGet,
    ),
}

_BY_UID = {uid: m for m in MODELS.values() for uid in (m.find, m.move, m.get)}


def model_for(sop_class_uid: str) -> InformationModel:
    """The model a C-FIND/C-MOVE/C-GET request's Affected SOP Class UID names."""
    try:
        return _BY_UID[str(sop_class_uid)]
    except KeyError:
        raise QRError(QRStatus.SOP_CLASS_NOT_SUPPORTED, f"{sop_class_uid} is not a supported Q/R model") from None


class QRStatus(IntEnum):
    """The Q/R statuses the SCP sends itself (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4)."""

    SUCCESS = 0x0000
    PENDING = 0xFF00
    CANCEL = 0xFE00
    SOP_CLASS_NOT_SUPPORTED = 0x0122
    OUT_OF_RESOURCES = 0xA700
    MOVE_DESTINATION_UNKNOWN = 0xA801
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    UNABLE_TO_PROCESS = 0xC000


class QRError(ValueError):
    """A request the SCP refuses: ``status`` and ``comment`` go back to the peer as they are."""

    def __init__(self, status: QRStatus, comment: str, offending: list[int] | None = None) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment[:64]  # ErrorComment is LO (PS3.7 C.4.1.1.4)
        self.offending = offending or []
