"""End to end: DCMTK storescu sends a CT → the node routes it → ct_seg runs in a Celery worker →
the result's ORU^R01 reaches the RIS (hl7apy's MLLP server) through the outbox relay and the
send worker, and the notify job is on the study's timeline."""

from __future__ import annotations

from pathlib import Path

import hl7
import pytest
import yaml
from sqlalchemy import select

from dicom_node.config import load_settings
from dicom_node.node import Node
from dicom_node.store.models import Job, JobEvent
from dicom_node.synthetic import StudySpec, ct_series, write_series
from tests.conftest import dcmtk, free_port, wait_for

from .helpers import MllpPeer

pytestmark = pytest.mark.slow


def test_a_ct_result_reaches_the_ris_through_the_queue(tmp_path: Path, mllp_peer: MllpPeer):
    config = {
        "data_dir": str(tmp_path / "node"), "host": "127.0.0.1", "port": free_port(), "min_free_disk_mb": 0,
        "completion": {"quiet_period_s": 0.5, "poll_interval_s": 0.1},
        "destinations": {"ris": mllp_peer.destination()},
        "rules": [{"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct_seg"}],
        "pipelines": {"ct_seg": {"notify": ["ris"]}},
        "queue": {"retry_base_s": 0.5, "lease_s": 30, "relay_interval_s": 0.1, "embedded_workers": {"gpu": 1, "send": 1}},
    }  # fmt: skip
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    node = Node(load_settings(path), config_path=path, workers=True)
    node.start()
    try:
        spec = StudySpec()
        files = write_series(ct_series(spec, shape=(32, 64, 64), lesion_radius=6.0, seed=11), tmp_path / "ct")
        sent = dcmtk("storescu", "-aet", "MODALITY", "-aec", "DICOM_NODE", "127.0.0.1", str(node.port), *map(str, files))
        assert sent.returncode == 0, sent.stderr
        [text] = wait_for(lambda: mllp_peer.received(), "the ORU at the RIS", timeout=180)

        def notify_done() -> Job | None:
            with node.index.sessions() as session:
                return session.scalars(select(Job).where(Job.kind == "notify", Job.state == "succeeded")).first()

        job = wait_for(notify_done, "the notify job to succeed")
        with node.index.sessions() as session:
            events = session.scalars(select(JobEvent.event).where(JobEvent.job_id == job.id).order_by(JobEvent.id)).all()
    finally:
        node.stop()
    message = hl7.parse(text)
    assert str(message.segment("MSH")(10)) == job.result["control_id"]
    assert str(message.segment("PID")(3)).split("^")[0] == spec.patient_id
    assert str(message.segment("OBR")(18)) == spec.accession and str(message.segment("OBR")(25)) == "P"
    study = [o for o in message.segments("OBX") if str(o(3)).startswith("113014^")]
    assert str(study[0](5)).split("^")[1] == spec.study_uid and len(study) == 3, "study, SEG and SR"
    assert list(events) == ["created", "queued", "started", "finished"]
