"""End to end with real peers: DCMTK storescu sends a synthetic study → the node routes it →
a MONAI pipeline runs in a worker → SEG + SR arrive at a DCMTK storescp playing the PACS,
valid per dciodvfy and dsrdump, and are held by the node for Q/R."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import select

from dicom_node.config import load_settings
from dicom_node.node import Node
from dicom_node.store.models import Instance, Job
from dicom_node.synthetic import StudySpec, ct_series, mr_series, write_series, xray_instance
from tests.conftest import FakePacs, dcmtk, free_port, wait_for

pytestmark = pytest.mark.slow

SEG, SR = "1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.88.34"


def write_config(tmp_path: Path, pacs: FakePacs, broker_url: str | None = None, workers: dict | None = None) -> Path:
    config = {
        "data_dir": str(tmp_path / "node"), "host": "127.0.0.1", "port": free_port(), "min_free_disk_mb": 0,
        "completion": {"quiet_period_s": 0.5, "poll_interval_s": 0.1},
        "destinations": {"pacs": {"kind": "dicom", **pacs.destination()}},
        "origins": {"MODALITY": "pacs"},
        "rules": [
            {"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct_seg"},
            {"name": "mr", "match": {"Modality": "MR"}, "pipeline": "mr_seg"},
            {"name": "xray", "match": {"Modality": ["CR", "DX"]}, "pipeline": "xray_cls", "priority": "stat"},
        ],
        "pipelines": {"xray_cls": {"urgent_threshold": 0.5}},
        "queue": {"broker_url": broker_url, "retry_base_s": 0.5, "lease_s": 30, "relay_interval_s": 0.1,
                  "embedded_workers": workers or {"gpu": 1, "send": 1}},
    }  # fmt: skip
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def store(port: int, files: list[Path]) -> None:
    result = dcmtk("storescu", "-aet", "MODALITY", "-aec", "DICOM_NODE", "127.0.0.1", str(port), *map(str, files))
    assert result.returncode == 0, result.stderr


def results_at(pacs: FakePacs) -> dict[str, Dataset]:
    return {str(ds.SOPClassUID): ds for ds in (dcmread(p) for p in pacs.files())}


def check_results(pacs: FakePacs, source: list[Dataset], dciodvfy, dsrdump) -> dict[str, Dataset]:
    wait_for(lambda: len(pacs.files()) == 2, "SEG and SR at the PACS", timeout=120)
    for path in pacs.files():
        dciodvfy(path)
    results = results_at(pacs)
    assert set(results) == {SEG, SR}
    sr_path = next(p for p in pacs.files() if str(dcmread(p, stop_before_pixels=True).SOPClassUID) == SR)
    dsrdump(sr_path)
    study_uid = source[0].StudyInstanceUID
    assert {str(ds.StudyInstanceUID) for ds in results.values()} == {study_uid}
    seg = results[SEG]
    referenced = {str(i.SeriesInstanceUID) for i in seg.ReferencedSeriesSequence}
    assert referenced == {str(source[0].SeriesInstanceUID)}
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "AUTOMATIC"
    return results


@pytest.fixture
def node_and_pacs(tmp_path):
    pacs = FakePacs(tmp_path / "pacs")
    pacs.start()
    config = write_config(tmp_path, pacs)
    node = Node(load_settings(config), config_path=config, workers=True)
    node.start()
    yield node, pacs
    node.stop()
    pacs.stop()


def _jobs(node: Node, kind: str) -> list[Job]:
    with node.index.sessions() as session:
        return list(session.scalars(select(Job).where(Job.kind == kind)))


def test_ct_lesion_segmented_and_returned(node_and_pacs, tmp_path, dciodvfy, dsrdump):
    node, pacs = node_and_pacs
    source = ct_series(StudySpec(), shape=(32, 64, 64), lesion_radius=6.0, seed=11)
    store(node.port, write_series(source, tmp_path / "ct"))
    results = check_results(pacs, source, dciodvfy, dsrdump)
    [job] = _jobs(node, "pipeline")
    assert job.state == "succeeded" and job.result["finding"] is True
    assert results[SEG].pixel_array.any(), "the lesion is in the SEG"
    with node.index.sessions() as session:  # results are held by the node too, for Q/R
        made = session.scalars(select(Instance.sop_instance_uid).where(Instance.made_by_node)).all()
    assert set(made) == {str(ds.SOPInstanceUID) for ds in results.values()}


def test_mr_lesion_segmented_and_returned(node_and_pacs, tmp_path, dciodvfy, dsrdump):
    node, pacs = node_and_pacs
    source = mr_series(StudySpec(), shape=(24, 64, 64), lesion_radius=5.0, seed=12)
    store(node.port, write_series(source, tmp_path / "mr"))
    check_results(pacs, source, dciodvfy, dsrdump)
    [job] = _jobs(node, "pipeline")
    assert job.result["finding"] is True


def test_xray_classified_with_heatmap_and_flagged_urgent(node_and_pacs, tmp_path, dciodvfy, dsrdump):
    node, pacs = node_and_pacs
    source = [xray_instance(StudySpec(), size=128, nodule=True, seed=13)]
    store(node.port, write_series(source, tmp_path / "dx"))
    results = check_results(pacs, source, dciodvfy, dsrdump)
    [job] = _jobs(node, "pipeline")
    assert job.result["positive"] is True and job.urgent
    assert results[SEG].SegmentationType == "FRACTIONAL"
    [send] = _jobs(node, "send")
    assert send.priority == 0, "urgent results go out first"


def test_one_slice_ct_fails_the_job_with_a_reason_and_sends_nothing(node_and_pacs, tmp_path):
    node, pacs = node_and_pacs
    source = ct_series(StudySpec(), shape=(1, 64, 64), lesion_radius=None)
    store(node.port, write_series(source, tmp_path / "one"))
    [job] = wait_for(lambda: [j for j in _jobs(node, "pipeline") if j.state == "dead"], "pipeline job dead", timeout=120)
    assert job.attempts == 1 and "slice" in job.error.lower()
    assert not _jobs(node, "send") and not pacs.files()


def test_with_redis_and_a_separate_worker_process(tmp_path, private_redis, dciodvfy, dsrdump):
    pacs = FakePacs(tmp_path / "pacs")
    pacs.start()
    config = write_config(tmp_path, pacs, broker_url=private_redis.url)
    node = Node(load_settings(config), config_path=config, workers=False)
    node.start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "dicom_node", "worker", "--config", str(config), "--queues", "gpu,send"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        source = ct_series(StudySpec(), shape=(32, 64, 64), lesion_radius=6.0, seed=14)
        store(node.port, write_series(source, tmp_path / "ct"))
        check_results(pacs, source, dciodvfy, dsrdump)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        node.stop()
        pacs.stop()
