"""Fixtures for the notification tests: a stored AI result and an MLLP peer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from dicom_node import synthetic as syn
from dicom_node.jobs.imaging import encode_result

from .helpers import CT_SHAPE, CT_SPACING, STUDY, MllpPeer, two_lesion_result


@pytest.fixture(scope="session")
def ct_source() -> list[Dataset]:
    return syn.ct_series(STUDY, shape=CT_SHAPE, spacing=CT_SPACING, seed=1)


@pytest.fixture(scope="session")
def result_objects(ct_source: list[Dataset]) -> list[Dataset]:
    """SEG + SR of an urgent two-lesion result, encoded once per session."""
    return encode_result(two_lesion_result(ct_source), urgent=True)


@pytest.fixture
def mllp_peer(tmp_path: Path) -> Iterator[MllpPeer]:
    peer = MllpPeer(tmp_path / "ris")
    peer.start()
    yield peer
    peer.stop()
