"""Pipeline results → standard DICOM objects, conforming to IHE AI Results (AIR).

::

    ImagingResult ──encode_segmentation──▶ BINARY SEG      (series 900)
                  ──encode_segmentation_report(seg)──▶ TID 1500 Comprehensive 3D SR (901)
                  ──encode_heatmap──▶ FRACTIONAL SEG "HEATMAP"                  (902)
                  ──encode_classification_report(heatmap)──▶ TID 1500 SR        (903)
    SidecarResult ──encode_sidecar_report──▶ Comprehensive SR, no images        (910)

Modules: :mod:`.algorithm` (who made it), :mod:`.uids` (deterministic UIDs), :mod:`.coding`
(concepts used), :mod:`.measure` (mask measurements), :mod:`.library` (Image Library of
projection radiographs), :mod:`.seg`, :mod:`.sr`, :mod:`.sidecar_sr`. Errors in the input (shapes, labels, studies) raise ``ValueError``.
"""

from .algorithm import AlgorithmInfo, add_contributing_equipment
from .seg import encode_heatmap, encode_segmentation
from .sidecar_sr import encode_sidecar_report, sidecar_algorithm
from .sr import encode_classification_report, encode_segmentation_report
from .uids import derive_uid, device_uid, result_uid

__all__ = [
    "AlgorithmInfo",
    "add_contributing_equipment",
    "encode_segmentation",
    "encode_heatmap",
    "encode_segmentation_report",
    "encode_classification_report",
    "encode_sidecar_report",
    "sidecar_algorithm",
    "derive_uid",
    "device_uid",
    "result_uid",
]
