"""Whether a series is the node's own result coming back, so that the router never routes it:
a PACS that auto-routes changed studies sends the node's SEG and SR back with the images
(issue 12 item 5), and no imaging pipeline may run on what the node itself made.

Two marks, either enough; not the modality, for a PACS may rightly send another AI's SEG or SR:

* the index's record that the node made the instance (``Instance.made_by_node``, which a later
  receipt of the same SOP Instance does not clear, :mod:`dicom_node.store.index`);
* the IHE AI Results Contributing Equipment item that every result the node encodes carries
  (:mod:`dicom_node.encoders.algorithm`): Purpose of Reference ``(Newcode1, 99IHE)`` and
  Manufacturer ``dicom-node``, for results whose record is gone (store purged, index rebuilt).
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_node.store.models import Instance

__all__ = ["NODE_MANUFACTURER", "identifies_node", "recorded_as_node_made"]

#: ``dicom_node.encoders.algorithm.MANUFACTURER``, written here rather than imported: importing the
#: encoders loads highdicom (about a second) into the node process, which encodes nothing.
#: tests/routing/test_idempotency.py checks that encoded results are recognised.
NODE_MANUFACTURER = "dicom-node"
_PROCESSING_ALGORITHM = ("Newcode1", "99IHE")  # IHE AIR purpose of reference


def recorded_as_node_made(session: Session, series_pk: int) -> bool:
    """Whether the index records that the node made an instance of this series."""
    made = select(Instance.id).where(Instance.series_pk == series_pk, Instance.made_by_node).limit(1)
    return session.scalar(made) is not None


def identifies_node(header: Dataset) -> bool:
    """Whether ``header`` (read in full: :func:`dicom_node.routing.rules.series_attributes`)
    names the node as its processing algorithm in the Contributing Equipment Sequence."""
    for item in header.get("ContributingEquipmentSequence", []):
        purposes = {(str(c.get("CodeValue", "")), str(c.get("CodingSchemeDesignator", ""))) for c in item.get("PurposeOfReferenceCodeSequence", [])}
        if _PROCESSING_ALGORITHM in purposes and str(item.get("Manufacturer", "")) == NODE_MANUFACTURER:
            return True
    return False
