"""Helpers for the notification tests: a stored AI result (two lesions, real SEG + SR), an
index holding it, and real peers (an hl7apy MLLP server, a local HTTP server)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from dicom_node import synthetic as syn
from dicom_node.config import Settings, load_settings
from dicom_node.jobs.notify import result_notices
from dicom_node.queue.outbox import add_jobs
from dicom_node.store.filestore import FileStore
from dicom_node.store.index import Index
from dicom_node.store.local import store_dataset
from dicom_node.store.models import Job
from pipelines.base import Code, ImagingResult, SegmentationOutput, SegmentLabel
from tests.conftest import free_port, wait_for

ABNORMAL = Code("49755003", "SCT", "Morphologically Abnormal Structure")
LESION = SegmentLabel("Lesion", ABNORMAL, Code("52988006", "SCT", "Lesion"), Code("39607008", "SCT", "Lung"))
CT_SHAPE = (24, 48, 48)
CT_SPACING = (2.5, 0.8, 0.8)
STUDY = syn.StudySpec(patient_id="SYN0042", patient_name="SYNTHETIC^PAT^M", accession="ACC42", sex="F",
                      birth_date="19610203", study_date="20260315", study_time="081522")  # fmt: skip


def two_lesion_result(source: list[Dataset]) -> ImagingResult:
    """A segmentation result with one label per lesion, as the lesion pipelines give."""
    mask = np.zeros(CT_SHAPE, dtype=np.uint8)
    mask[8:14, 10:18, 10:18] = 1  # the larger lesion
    mask[16:18, 30:34, 30:34] = 2
    return ImagingResult(
        pipeline="ct-lesion", version="1.2.0", model_name="unet-demo", model_checksum="sha256:0123abcd",
        source=source, segmentation=SegmentationOutput(mask=mask, labels={1: LESION, 2: LESION}),
    )  # fmt: skip



def make_settings(tmp_path: Path, destinations: dict[str, Any], **extra: Any) -> Settings:
    return load_settings(
        data_dir=tmp_path / "node", port=0, host="127.0.0.1", min_free_disk_mb=0, destinations=destinations,
        queue={"max_attempts": 3, "retry_base_s": 1, "retry_max_s": 2}, **extra,
    )  # fmt: skip


def index_of(settings: Settings) -> Index:
    return Index(settings.database_url or "")


def store_result(settings: Settings, index: Index, objects: list[Dataset], notify: list[str], urgent: bool = True,
                 state: str = "succeeded") -> list[int]:
    """Store ``objects`` as a finished pipeline job's results; returns the notify job ids."""
    store = FileStore(settings.store_dir)
    records = [store_dataset(store, index, ds) for ds in objects]
    stored = [{"sop_instance_uid": r.sop_instance_uid, "sop_class_uid": r.sop_class_uid, "path": r.path} for r in records]
    series_uid = str(objects[0].ReferencedSeriesSequence[0].SeriesInstanceUID)  # the SEG's source series
    with index.sessions.begin() as session:
        pipeline_job = Job(kind="pipeline", queue="gpu", study_uid=str(objects[0].StudyInstanceUID), series_uid=series_uid,
                           pipeline="ct-lesion", priority=5, params={"notify": notify}, state=state, max_attempts=3)  # fmt: skip
        session.add(pipeline_job)
        session.flush()
        rows = add_jobs(session, result_notices(pipeline_job, stored, urgent), settings.queue.max_attempts)
        return [row.id for row in rows]


@dataclass
class MllpPeer:
    """hl7apy's MLLPServer in a subprocess (see mllp_peer.py); ``mode`` sets its next answer."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.mode("AA")
        root = Path(__file__).resolve().parents[2]
        self.process = subprocess.Popen([sys.executable, "-m", "tests.notify.mllp_peer", str(self.port), str(self.folder)], cwd=root)
        wait_for(lambda: (self.folder / "ready").exists(), "the MLLP peer to listen", timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)

    def mode(self, mode: str, reason: str = "") -> None:
        (self.folder / "mode").write_text(mode)
        (self.folder / "reason").write_text(reason)

    def received(self) -> list[str]:
        return [p.read_bytes().decode() for p in sorted(self.folder.glob("*.hl7"))]

    def destination(self, **extra: Any) -> dict[str, Any]:
        return {"kind": "hl7", "host": "127.0.0.1", "port": self.port, "sending_application": "AI_NODE",
                "sending_facility": "RAD", "receiving_application": "RIS", "receiving_facility": "HOSP",
                "ack_timeout_s": 10, **extra}  # fmt: skip



@dataclass
class HttpPeer:
    """A local HTTP server recording each request; ``answer(request) -> (status, body)``."""

    answer: Callable[[dict[str, Any]], tuple[int, dict[str, Any] | str]]
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = {"path": self.path, "headers": dict(self.headers), "body": body}
                peer.requests.append(request)
                status, answer = peer.answer(request)
                data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
