"""Which algorithm made a result, in every place DICOM and IHE AI Results (AIR) want it said.

One :class:`AlgorithmInfo` feeds:

- SEG: the Algorithm Identification Sequence of each segment (PS3.3 C.8.20.2, family
  CID 7162 "Artificial Intelligence");
- SR: TID 4019 Algorithm Identification on measurement groups and a TID 1004 device observer
  whose Device Observer UID is the algorithm's Device UID;
- both: an AIR Contributing Equipment item (Purpose of Reference ``(Newcode1, 99IHE,
  "Processing Algorithm")``). highdicom's ``ContributingEquipment`` only accepts DCM purposes
  and raises ``ValueError`` for this one, so the item is appended as a plain pydicom dataset.

The Device UID is derived from name, version and model checksum: it changes when the model is
retrained even if the pipeline version does not, as AIR asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from highdicom import AlgorithmIdentificationSequence
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    DeviceObserverIdentifyingAttributes,
    ObserverContext,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import UID

from pipelines.base import ImagingResult

from .uids import device_uid

__all__ = ["MANUFACTURER", "PROCESSING_ALGORITHM", "AlgorithmInfo", "add_contributing_equipment"]

#: Manufacturer recorded for every object the node writes.
MANUFACTURER = "dicom-node"

#: IHE AIR purpose of reference for the algorithm's Contributing Equipment item.
PROCESSING_ALGORITHM = CodedConcept("Newcode1", "99IHE", "Processing Algorithm")

_LO_MAX = 64  # Long String (LO) value length, PS3.5 6.2


@dataclass(frozen=True)
class AlgorithmInfo:
    """A pipeline and the model it ran: name, version, model name and model checksum."""

    name: str
    version: str
    model_name: str
    model_checksum: str

    def __post_init__(self) -> None:
        for field_name in ("name", "version", "model_name"):
            value = getattr(self, field_name)
            if not value or len(value) > _LO_MAX or "\\" in value:
                raise ValueError(
                    f"AlgorithmInfo.{field_name} must be 1-{_LO_MAX} characters without a backslash "
                    f"(it is written as a DICOM LO value), got {value!r}."
                )
        if not self.model_checksum:
            raise ValueError("AlgorithmInfo.model_checksum must not be empty.")

    @classmethod
    def from_result(cls, result: ImagingResult) -> AlgorithmInfo:
        """The algorithm that produced ``result``."""
        return cls(result.pipeline, result.version, result.model_name, result.model_checksum)

    @cached_property
    def device_uid(self) -> UID:
        """Device UID: stable for one model, new when the weights change."""
        return device_uid(self.name, self.version, self.model_checksum)

    @property
    def parameters(self) -> dict[str, str]:
        """Model identity, recorded as algorithm parameters."""
        return {"model": self.model_name, "model_checksum": self.model_checksum}

    def seg_identification(self) -> AlgorithmIdentificationSequence:
        """Algorithm Identification Sequence for a SEG segment description (PS3.3 C.8.20.2)."""
        return AlgorithmIdentificationSequence(
            name=self.name,
            family=codes.cid7162.ArtificialIntelligence,
            version=self.version,
            source=MANUFACTURER,
            parameters=self.parameters,
        )

    def sr_identification(self) -> AlgorithmIdentification:
        """TID 4019 Algorithm Identification for SR measurement groups."""
        return AlgorithmIdentification(
            name=self.name,
            version=self.version,
            parameters=[f"{key}={value}" for key, value in self.parameters.items()],
            family=codes.cid7162.ArtificialIntelligence,
            manufacturer=MANUFACTURER,
        )

    def observer_context(self) -> ObserverContext:
        """TID 1002 observer context naming the algorithm as a device observer (TID 1004)."""
        return ObserverContext(
            observer_type=codes.cid270.Device,
            observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
                uid=self.device_uid,
                name=self.name,
                manufacturer_name=MANUFACTURER,
                model_name=self.model_name,
            ),
        )

    def contributing_equipment_item(self) -> Dataset:
        """The IHE AIR Contributing Equipment item for this algorithm."""
        item = Dataset()
        item.PurposeOfReferenceCodeSequence = [PROCESSING_ALGORITHM]
        item.Manufacturer = MANUFACTURER
        item.ManufacturerModelName = self.model_name
        item.SoftwareVersions = self.version
        item.DeviceUID = self.device_uid
        item.ContributionDescription = f"{self.name} {self.version}"
        return item


def add_contributing_equipment(ds: Dataset, algorithm: AlgorithmInfo) -> None:
    """Append the algorithm's AIR item to ``ds``'s Contributing Equipment Sequence (SOP Common).

    Keeps the items highdicom already wrote (source acquisition equipment, highdicom itself).
    """
    if "ContributingEquipmentSequence" not in ds:
        ds.ContributingEquipmentSequence = []
    ds.ContributingEquipmentSequence.append(algorithm.contributing_equipment_item())
