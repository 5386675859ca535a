"""A routing rule's ``fetch_priors`` action: a study completes → the node queries a real Orthanc
for the patient's earlier CT studies and retrieves them into its own store and index."""

from __future__ import annotations

import pytest
import yaml
from sqlalchemy import select

from dicom_node.config import load_settings
from dicom_node.node import Node
from dicom_node.store.models import Job
from dicom_node.synthetic import StudySpec, ct_series, mr_series, write_series
from tests.conftest import dcmtk, free_port, wait_for
from tests.orthanc import Orthanc

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("method", ["get", "move"])
def test_completed_study_fetches_its_priors(tmp_path, method):
    node_port = free_port()
    orthanc = Orthanc(tmp_path / "orthanc", {"node": ("DICOM_NODE", node_port)})
    node = None
    try:
        prior_ct = StudySpec("PRIOR-1", "PRIOR^PATIENT", study_date="20250301", accession="OLD1")
        prior_mr = StudySpec("PRIOR-1", "PRIOR^PATIENT", study_date="20250401", accession="OLD2")
        orthanc.upload(write_series(ct_series(prior_ct, shape=(3, 16, 16), lesion_radius=None), tmp_path / "prior_ct"))
        orthanc.upload(write_series(mr_series(prior_mr, shape=(2, 16, 16), lesion_radius=None), tmp_path / "prior_mr"))
        config = {
            "data_dir": str(tmp_path / "node"), "host": "127.0.0.1", "port": node_port, "min_free_disk_mb": 0,
            "completion": {"quiet_period_s": 0.5, "poll_interval_s": 0.1},
            "destinations": {"orthanc": {"kind": "dicom", **orthanc.destination.model_dump(exclude={"kind"})}},
            "rules": [{"name": "priors", "match": {"Modality": "CT"},
                       "fetch_priors": {"source": "orthanc", "modality": "CT", "lookback_days": 3650, "method": method}}],
            "queue": {"relay_interval_s": 0.1, "embedded_workers": {"send": 1}},
        }  # fmt: skip
        path = tmp_path / "node.yaml"
        path.write_text(yaml.safe_dump(config))
        node = Node(load_settings(path), config_path=path, workers=True)
        node.start()
        current = StudySpec("PRIOR-1", "PRIOR^PATIENT", study_date="20260101")
        files = write_series(ct_series(current, shape=(2, 16, 16), lesion_radius=None), tmp_path / "current")
        assert dcmtk("storescu", "-aec", "DICOM_NODE", "127.0.0.1", str(node_port), *map(str, files)).returncode == 0

        def fetched() -> Job | None:
            with node.index.sessions() as session:
                return session.scalar(select(Job).where(Job.kind == "fetch_priors", Job.state.in_(("succeeded", "dead"))))

        job = wait_for(fetched, "fetch_priors job finished", timeout=90)
        assert job.state == "succeeded", job.error
        assert job.result["priors"] == [prior_ct.study_uid], "only the CT prior: the MR is another modality"
        held = {s.study_uid: s.instances for s in node.index.studies()}
        assert held[prior_ct.study_uid] == 3 and prior_mr.study_uid not in held
    finally:
        if node is not None:
            node.stop()
        orthanc.stop()
