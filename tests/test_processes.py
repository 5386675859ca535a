"""Every process of a node runs with the settings serve runs with, and the console of a
running node says what happens once, without the libraries' furniture.

A flag given to serve must hold in its receiver and worker processes: both act under the
node's AE title towards other peers (a worker forwarding a study, a receiver performing a
C-MOVE's sub-operations), so a peer that records the calling AE title of every association
it is offered sees what each process believes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydicom import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

from dicom_node.config import load_settings, recorded_settings
from dicom_node.node import Node
from dicom_node.store.index import Index
from dicom_node.synthetic import ct_series, write_series
from tests.conftest import dcmtk, free_port, require, wait_for

pytestmark = pytest.mark.slow


class CallingAERecorder:
    """A Storage SCP that accepts everything and remembers who called."""

    ae_title = "RECORDER"

    def __init__(self) -> None:
        self.callers: list[str] = []
        self._lock = threading.Lock()
        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = AllStoragePresentationContexts
        self.server = ae.start_server(
            ("127.0.0.1", 0), block=False,
            evt_handlers=[(evt.EVT_ACCEPTED, self._accepted), (evt.EVT_C_STORE, lambda event: 0x0000)],
        )  # fmt: skip
        self.port = self.server.server_address[1]

    def _accepted(self, event: evt.Event) -> None:
        with self._lock:
            self.callers.append(event.assoc.requestor.ae_title)

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def recorder() -> Iterator[CallingAERecorder]:
    peer = CallingAERecorder()
    yield peer
    peer.stop()


def _config(tmp_path: Path, recorder: CallingAERecorder) -> Path:
    config = {
        "ae_title": "FROM_FILE",
        "data_dir": str(tmp_path / "node"),
        "host": "127.0.0.1",
        "receivers": 2,
        "min_free_disk_mb": 0,
        "completion": {"quiet_period_s": 0.5, "poll_interval_s": 0.1},
        "destinations": {"recorder": {"ae_title": recorder.ae_title, "host": "127.0.0.1", "port": recorder.port}},
        "rules": [{"name": "forward-ct", "match": {"Modality": "CT"}, "forward": ["recorder"]}],
        "queue": {"relay_interval_s": 0.1, "embedded_workers": {"send": 1}},
    }
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _move_association(port: int) -> Association:
    ae = AE(ae_title="MOVER")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate("127.0.0.1", port, ae_title="FLAGGED")
    assert assoc.is_established
    return assoc


def _move(assoc: Association, study_uid: str, destination: str) -> int:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    statuses = [status.Status for status, _ in assoc.send_c_move(query, destination, StudyRootQueryRetrieveInformationModelMove) if status]
    return statuses[-1]


def test_flags_given_to_serve_hold_in_receivers_and_workers(tmp_path, recorder, capfd, caplog):
    require("storescu")
    caplog.set_level(logging.INFO)
    config = _config(tmp_path, recorder)
    # serve --config node.yaml --ae-title FLAGGED --port N
    node = Node(load_settings(config, ae_title="FLAGGED", port=free_port()), config_path=config, workers=True)
    node.start()
    try:
        assert recorded_settings(tmp_path / "node") == node.settings  # what the children load
        files = write_series(ct_series(shape=(2, 16, 16), lesion_radius=None), tmp_path / "study")
        sent = dcmtk("storescu", "-aec", "FLAGGED", "127.0.0.1", str(node.port), *map(str, files))
        assert sent.returncode == 0, sent.stderr
        # The send worker forwards the complete study under its AE title.
        wait_for(lambda: recorder.callers, "the worker's forward reached the recorder", timeout=60)
        study_uid = Index(node.settings.database_url or "").studies()[0].study_uid
        # Two associations at once: the dispatcher gives each to a different receiver, the
        # child process's too, and each receiver opens a C-MOVE sub-association.
        first, second = _move_association(node.port), _move_association(node.port)
        try:
            assert [_move(a, study_uid, recorder.ae_title) for a in (first, second)] == [0x0000, 0x0000]
        finally:
            first.release()
            second.release()
        wait_for(lambda: len(recorder.callers) >= 3, "a sub-association from each receiver")
        assert set(recorder.callers) == {"FLAGGED"}, recorder.callers
    finally:
        node.stop()
    assert all(proc.returncode == 0 for proc, _ in node.children.values()), "every child stopped cleanly"
    children = capfd.readouterr()  # the children write to the test's stdout and stderr
    console = children.out + children.err + caplog.text  # caplog: serve's own process
    for furniture in ("SecurityWarning", "Warm shutdown", "No hostname was supplied", "-------------- ", "exited with"):
        assert furniture not in console, furniture
    assert console.count(" listening on ") == 1, console
