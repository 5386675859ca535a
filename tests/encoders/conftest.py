"""Fixtures for the encoder tests: synthetic sources, fake results, and the real validators."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from dicom_node import synthetic as syn
from dicom_node.encoders import AlgorithmInfo
from pipelines.base import ClassificationOutput, ImagingResult

from .helpers import CT_SHAPE, CT_SPACING, LESION, NODULE, imaging_result


@pytest.fixture(scope="session")
def study() -> syn.StudySpec:
    return syn.StudySpec()


@pytest.fixture(scope="session")
def ct_source(study: syn.StudySpec) -> list[Dataset]:
    return syn.ct_series(study, shape=CT_SHAPE, spacing=CT_SPACING, seed=0)


@pytest.fixture(scope="session")
def ct_mask() -> np.ndarray:
    """The synthetic lesion of ``ct_source``: the same generator, the same seed."""
    _, mask = syn.ct_volume(CT_SHAPE, 6.0, np.random.default_rng(0))
    return mask


@pytest.fixture
def ct_result(ct_source: list[Dataset], ct_mask: np.ndarray) -> ImagingResult:
    return imaging_result(ct_source, ct_mask.astype(np.uint8), {1: LESION})


@pytest.fixture
def algorithm(ct_result: ImagingResult) -> AlgorithmInfo:
    return AlgorithmInfo.from_result(ct_result)


@pytest.fixture(scope="session")
def xray(study: syn.StudySpec) -> Dataset:
    return syn.xray_instance(study, size=128)


@pytest.fixture
def xray_result(xray: Dataset) -> ImagingResult:
    yy, xx = np.mgrid[:128, :128]
    heatmap = np.exp(-((yy - 60) ** 2 + (xx - 40) ** 2) / 200.0)
    return ImagingResult(
        pipeline="cxr-nodule",
        version="0.3.0",
        model_name="densenet-demo",
        model_checksum="sha256:feedbeef",
        source=[xray],
        classification=ClassificationOutput(finding=NODULE, probability=0.87, threshold=0.5, heatmap=heatmap),
    )


@pytest.fixture
def save(tmp_path: Path) -> Callable[[Dataset, str], Path]:
    """Write a dataset as a Part 10 file under tmp_path."""

    def _save(ds: Dataset, name: str) -> Path:
        path = tmp_path / f"{name}.dcm"
        ds.save_as(path, enforce_file_format=True)
        return path

    return _save


