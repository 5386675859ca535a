"""End to end over HTTP: a CT stored with STOW-RS is routed like a C-STORE'd one, ct_seg runs
in a worker, and its SEG and SR are retrievable over WADO-RS (and sent to the destination
``origins`` names for the calling AE ``STOW-RS``)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dicomweb_client import DICOMwebClient
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_node.config import load_settings
from dicom_node.node import Node
from dicom_node.synthetic import StudySpec, ct_series
from dicom_node.web.auth import create_token
from dicom_node.web.dicomweb.stow import STOW_CALLING_AE
from tests.conftest import FakePacs, free_port, wait_for

pytestmark = pytest.mark.slow

SEG, SR = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.88.34"


@pytest.fixture
def node_and_pacs(tmp_path: Path) -> Iterator[tuple[Node, FakePacs]]:
    pacs = FakePacs(tmp_path / "pacs")
    pacs.start()
    config = {
        "data_dir": str(tmp_path / "node"), "host": "127.0.0.1", "port": free_port(), "min_free_disk_mb": 0, "receivers": 1,
        "http": {"enabled": True, "port": 0},
        "completion": {"quiet_period_s": 0.5, "poll_interval_s": 0.1},
        "destinations": {"pacs": {"kind": "dicom", **pacs.destination()}},
        "origins": {STOW_CALLING_AE: "pacs"},
        "rules": [{"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct_seg"}],
        "queue": {"retry_base_s": 0.5, "lease_s": 30, "relay_interval_s": 0.1, "embedded_workers": {"gpu": 1, "send": 1}},
    }  # fmt: skip
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    node = Node(load_settings(path), config_path=path, workers=True)
    node.start()
    yield node, pacs
    node.stop()
    pacs.stop()


def _part10(ds: Dataset) -> Dataset:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return dcmread(io.BytesIO(out.getvalue()))


def test_a_ct_stored_over_stow_is_segmented_and_its_results_retrievable(node_and_pacs: tuple[Node, FakePacs]) -> None:
    node, pacs = node_and_pacs
    assert node.web is not None
    headers = {"Authorization": f"Bearer {create_token(node.index, 'modality', 'operator')}"}
    client = DICOMwebClient(f"http://127.0.0.1:{node.web.port}/dicom-web", headers=headers)
    source = [_part10(ds) for ds in ct_series(StudySpec(), shape=(32, 64, 64), lesion_radius=6.0, seed=11)]
    result = client.store_instances(source)
    assert len(result.ReferencedSOPSequence) == len(source)
    study = str(source[0].StudyInstanceUID)

    def result_series() -> list[dict]:
        return [s for s in client.search_for_series(study) if Dataset.from_json(s).Modality in ("SEG", "SR")]

    found = wait_for(lambda: len(result_series()) == 2 and result_series(), "SEG and SR in the node's index", timeout=180)
    by_modality = {Dataset.from_json(s).Modality: Dataset.from_json(s).SeriesInstanceUID for s in found}
    (seg,) = client.retrieve_series(study, by_modality["SEG"])
    assert seg.SOPClassUID == SEG and seg.pixel_array.any(), "the lesion is in the SEG"
    assert {str(i.SeriesInstanceUID) for i in seg.ReferencedSeriesSequence} == {str(source[0].SeriesInstanceUID)}
    (sr,) = client.retrieve_series(study, by_modality["SR"])
    assert sr.SOPClassUID == SR
    wait_for(lambda: len(pacs.files()) == 2, "SEG and SR sent to the origin of STOW-RS", timeout=60)
