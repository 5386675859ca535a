"""Issue 12 item 5, end to end with a real Orthanc auto-routing to the node: Orthanc's Lua
``OnStableStudy`` sends each stable study to the node, the node's SEG and SR go back to Orthanc
(the study's origin), which changes the study, so Orthanc sends CT + SEG + SR to the node again.
The echo must not run the pipeline a second time: exactly one inference per study."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from dicom_node.config import load_settings
from dicom_node.node import Node
from dicom_node.store.models import CompletionEvent, Instance, Job, JobEvent, Series, Study
from dicom_node.synthetic import StudySpec, ct_series, write_series
from tests.conftest import free_port, wait_for
from tests.orthanc import Orthanc

pytestmark = pytest.mark.slow

NODE_AE = "DICOM_NODE"
# The whole study, by REST: Lua's SendToModality() takes an instance, not a study.
AUTOROUTE = """
function OnStableStudy(studyId, tags, metadata)
  RestApiPost('/modalities/node/store', studyId)
end
"""


@dataclass
class AutoRouting:
    node: Node
    orthanc: Orthanc


@pytest.fixture
def autorouting(tmp_path: Path) -> Iterator[AutoRouting]:
    node_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", {"node": (NODE_AE, node_port)}, lua=AUTOROUTE, stable_age_s=2)
    config = {
        "data_dir": str(tmp_path / "node"), "host": "127.0.0.1", "port": node_port, "ae_title": NODE_AE,
        "receivers": 1, "min_free_disk_mb": 0, "completion": {"quiet_period_s": 0.5, "poll_interval_s": 0.1},
        "destinations": {"orthanc": {"kind": "dicom", "ae_title": orthanc.ae_title, "host": "127.0.0.1", "port": orthanc.dicom_port}},
        "origins": {orthanc.ae_title: "orthanc"},  # results go back where the study came from
        "rules": [
            {"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct_seg"},
            # stands for a pipeline fed with other AIs' results: the node's own must never reach it
            {"name": "ai-results", "match": {"Modality": ["SEG", "SR"]}, "pipeline": "ct_seg"},
        ],
        "queue": {"retry_base_s": 0.5, "lease_s": 60, "relay_interval_s": 0.1, "embedded_workers": {"gpu": 1, "send": 1}},
    }  # fmt: skip
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    node = Node(load_settings(path), config_path=path, workers=True)
    try:
        node.start()
        yield AutoRouting(node, orthanc)
    finally:
        node.stop()
        orthanc.stop()


def _rows(node: Node, model: type, study_uid: str) -> list:
    with node.index.sessions() as session:
        return list(session.scalars(select(model).where(model.study_uid == study_uid).order_by(model.id)))


def _echo_routed(node: Node, study_uid: str, since: dt.datetime, instances: int) -> bool:
    """Whether all ``instances`` of the study came in again after ``since`` and the node has
    completed and routed the study since (an echo may come in more than one completion)."""
    with node.index.sessions() as session:
        again = session.scalar(
            select(func.count(Instance.id)).join(Series).join(Study)
            .where(Study.study_uid == study_uid, Instance.received_at > since)
        )  # fmt: skip
        study = session.scalar(select(Study).where(Study.study_uid == study_uid))
        unrouted = session.scalar(select(func.count(CompletionEvent.id)).where(CompletionEvent.routed_at.is_(None)))
    return again == instances and study is not None and study.completed_at is not None and study.completed_at >= study.last_received_at and unrouted == 0


def test_results_echoed_back_by_orthanc_do_not_run_the_pipeline_again(autorouting: AutoRouting, tmp_path):
    node, orthanc = autorouting.node, autorouting.orthanc
    source = ct_series(StudySpec(), shape=(32, 64, 64), lesion_radius=6.0, seed=21)
    study_uid = str(source[0].StudyInstanceUID)
    orthanc.upload(write_series(source, tmp_path / "ct"))

    # Orthanc sends the CT to the node, the node's SEG and SR reach Orthanc …
    wait_for(lambda: orthanc.study_instances(study_uid) == len(source) + 2, "SEG and SR stored in Orthanc", timeout=240)
    # … which changes the study: Orthanc sends CT + SEG + SR again, the node completes and routes it once more
    [sent] = wait_for(lambda: [j for j in _rows(node, Job, study_uid) if j.kind == "send" and j.finished_at], "results sent")
    wait_for(lambda: _echo_routed(node, study_uid, sent.finished_at, len(source) + 2), "the echoed study received and routed", timeout=120)

    jobs = [j for j in _rows(node, Job, study_uid) if j.kind == "pipeline"]
    assert len(jobs) == 1, f"one inference per study, got {[(j.id, j.series_uid, j.state) for j in jobs]}"
    assert jobs[0].series_uid == str(source[0].SeriesInstanceUID) and jobs[0].state == "succeeded"
    timeline = [(e.event, e.detail) for e in _rows(node, JobEvent, study_uid)]
    assert any(event == "already processed" and f"job {jobs[0].id}" in detail for event, detail in timeline), timeline
    own = [detail for event, detail in timeline if event == "own result"]
    assert len(own) == 2, timeline  # the SEG series and the SR series, each recognised as the node's
