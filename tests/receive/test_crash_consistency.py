"""kill -9 the node mid-ingest: every instance the sender saw acknowledged is, after a restart,
on disk, intact and indexed; nothing half-written is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from dicom_node.config import load_settings
from dicom_node.receive.scp import NodeServer
from dicom_node.synthetic import StudySpec, ct_series, write_series
from tests.conftest import free_port, wait_for


def _echo_ok(port: int) -> bool:
    ae = AE()
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port)
    if not assoc.is_established:
        return False
    assoc.release()
    return True


def test_kill_9_during_500_image_ingest_loses_nothing_acknowledged(tmp_path: Path):
    study = StudySpec()
    datasets = [ds for k in range(5) for ds in ct_series(study, shape=(100, 16, 16), lesion_radius=None, seed=k, series_number=k + 1)]
    files = write_series(datasets, tmp_path / "src")
    assert len(files) == 500
    data_dir, port = tmp_path / "node", free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dicom_node", "serve", "--data-dir", str(data_dir), "--port", str(port), "--no-workers"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: _echo_ok(port), "node accepting associations")
        acknowledged: list[Path] = []

        def sender() -> None:
            ae = AE(ae_title="MODALITY")
            ae.add_requested_context(CTImageStorage)
            assoc = ae.associate("127.0.0.1", port, ae_title="DICOM_NODE")
            for path in files:
                status = assoc.send_c_store(path) if assoc.is_established else None
                if status is not None and "Status" in status and status.Status == 0:
                    acknowledged.append(path)
                else:
                    return
            assoc.release()

        thread = threading.Thread(target=sender)
        thread.start()
        wait_for(lambda: len(acknowledged) >= 150, "150 instances acknowledged")
        os.kill(proc.pid, signal.SIGKILL)
        thread.join(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert 150 <= len(acknowledged) < 500, "the kill must land mid-ingest"

    settings = load_settings(data_dir=data_dir, port=0, host="127.0.0.1")
    server = NodeServer(settings, qr=False)
    server.start()  # reconciles the index with the store
    try:
        assert not list(server.store.incoming.iterdir()), "partial uploads cleared"
        indexed = server.index.indexed_paths()
        for src in acknowledged:
            ds = dcmread(src)
            stored = server.store.path_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            assert str(stored) in indexed, f"{ds.SOPInstanceUID} acknowledged but not indexed"
            assert dcmread(stored).PixelData == ds.PixelData
        assert set(indexed) == {str(p) for p in server.store.iter_files()}, "index and store agree"
    finally:
        server.stop()
