"""What the SCP accepts: storage SOP classes × transfer syntaxes.

Files are stored exactly as received, so every transfer syntax we list is one we keep, not
one we decode; decoding is the pipelines' business (pylibjpeg/gdcm).
"""

from __future__ import annotations

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import sop_class as sc

__all__ = ["STORAGE_SOP_CLASSES", "TRANSFER_SYNTAXES"]

# Order is preference when a sender offers several in one context (pynetdicom takes the
# acceptor's order): lossless compression as sent, then uncompressed, and lossy syntaxes only
# when offered alone — accepting a lossy syntax for an image offered uncompressed would let the
# sender degrade it.
TRANSFER_SYNTAXES: list[str] = [
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLossless,
    RLELossless,
    ExplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
    JPEG2000,
]

STORAGE_SOP_CLASSES: dict[str, str] = {
    "CT Image": sc.CTImageStorage,
    "Enhanced CT Image": sc.EnhancedCTImageStorage,
    "MR Image": sc.MRImageStorage,
    "Enhanced MR Image": sc.EnhancedMRImageStorage,
    "Computed Radiography Image": sc.ComputedRadiographyImageStorage,
    "Digital X-Ray Image (presentation)": sc.DigitalXRayImageStorageForPresentation,
    "Digital X-Ray Image (processing)": sc.DigitalXRayImageStorageForProcessing,
    "Digital Mammography X-Ray Image (presentation)": sc.DigitalMammographyXRayImageStorageForPresentation,
    "Digital Mammography X-Ray Image (processing)": sc.DigitalMammographyXRayImageStorageForProcessing,
    "Secondary Capture Image": sc.SecondaryCaptureImageStorage,
    "Segmentation": sc.SegmentationStorage,
    "Label Map Segmentation": sc.LabelMapSegmentationStorage,
    "Parametric Map": sc.ParametricMapStorage,
    "X-Ray Radiation Dose SR": sc.XRayRadiationDoseSRStorage,
    "Basic Text SR": sc.BasicTextSRStorage,
    "Enhanced SR": sc.EnhancedSRStorage,
    "Comprehensive SR": sc.ComprehensiveSRStorage,
    "Comprehensive 3D SR": sc.Comprehensive3DSRStorage,
    "Key Object Selection": sc.KeyObjectSelectionDocumentStorage,
    "Encapsulated PDF": sc.EncapsulatedPDFStorage,
}
