"""End-to-end benchmark: synthetic 300-slice 512×512 CTs through the whole node — storescu →
node → ct_seg (demo model) → SEG + SR → storescp — on the embedded broker.

    TCP_NODELAY=1 .venv/bin/python bench/e2e.py [--slices 300] [--size 512]

Prints the timeline (receive, queue wait, read, pre-process, inference, post-process, encode,
store, send; the quiet period is excluded) and the share of non-inference time, for two CTs one
after the other, so the spread between runs shows. A small study goes first, so workers are up
and the model is loaded: the figures are the node's steady state, not its start-up. On a GPU host
the worker uses CUDA automatically (the printed device says which ran).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml
from pydicom import dcmread
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.tools import DCMTK_ENV as ENV  # noqa: E402
from tests.tools import free_port  # noqa: E402
from dicom_node.config import load_settings  # noqa: E402
from dicom_node.node import Node  # noqa: E402
from dicom_node.store.models import CompletionEvent, Job  # noqa: E402
from dicom_node.synthetic import StudySpec, ct_series, write_series  # noqa: E402

def store(port: int, files: list[Path]) -> None:
    subprocess.run(["storescu", "-aet", "BENCH", "-aec", "DICOM_NODE", "127.0.0.1", str(port), *map(str, files)], env=ENV, check=True)


def study_uid_of(files: list[Path]) -> str:
    return str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def wait_for_send(node: Node, study_uid: str, timeout: float = 3600) -> None:
    """Until the study's results were sent (or its job died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with node.index.sessions() as session:
            states = session.execute(select(Job.kind, Job.state).where(Job.study_uid == study_uid)).all()
        if any(k == "send" and s == "succeeded" for k, s in states) or any(s == "dead" for _, s in states):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no result for {study_uid}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dicom-node-e2e-"))
    pacs_port = free_port()
    (tmp / "pacs").mkdir()
    pacs = subprocess.Popen(["storescp", "-od", str(tmp / "pacs"), "+xa", "-aet", "PACS", str(pacs_port)], env=ENV, stdout=subprocess.DEVNULL)
    config = {
        "data_dir": str(tmp / "node"), "host": "127.0.0.1", "port": free_port(), "min_free_disk_mb": 0, "log_level": "WARNING",
        "completion": {"quiet_period_s": 1.0, "poll_interval_s": 0.1},
        "destinations": {"pacs": {"kind": "dicom", "ae_title": "PACS", "host": "127.0.0.1", "port": pacs_port}},
        "rules": [{"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct_seg", "forward": []}],
        "origins": {"BENCH": "pacs"},
        "queue": {"embedded_workers": {"gpu": 1, "send": 1}, "relay_interval_s": 0.1},
    }  # fmt: skip
    path = tmp / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    shape = (args.slices, args.size, args.size)
    studies = [
        write_series(ct_series(StudySpec(), shape=shape, lesion_radius=args.size / 20, spacing=(1.0, 0.7, 0.7), seed=n),
                     tmp / f"ct{n}")
        for n in range(2)
    ]  # fmt: skip
    warmup = write_series(ct_series(StudySpec(), shape=(16, 64, 64), lesion_radius=4), tmp / "warmup")
    node = Node(load_settings(path), config_path=path, workers=True)
    node.start()
    runs = []
    try:
        store(node.port, warmup)
        wait_for_send(node, study_uid_of(warmup))
        for files in studies:
            t0 = time.perf_counter()
            store(node.port, files)
            receive_s = time.perf_counter() - t0
            study_uid = study_uid_of(files)
            wait_for_send(node, study_uid)
            runs.append((receive_s, *finished_jobs(node, study_uid)))
    finally:
        node.stop()
        pacs.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
    for number, (receive_s, pipeline, send, completed) in enumerate(runs, start=1):
        print(f"study {number}: {args.slices} x {args.size}x{args.size} CT, demo ct_seg")
        if pipeline is None or pipeline.state != "succeeded" or send is None:
            print(f"  pipeline did not finish: {pipeline.error if pipeline else 'no job'}")
            continue
        print_timeline(receive_s, pipeline, send, completed)


def finished_jobs(node: Node, study_uid: str) -> tuple[Job | None, Job | None, datetime | None]:
    """The study's pipeline job, its send job and when the study was complete."""
    with node.index.sessions() as session:
        pipeline = session.scalar(select(Job).where(Job.kind == "pipeline", Job.study_uid == study_uid))
        send = session.scalar(select(Job).where(Job.kind == "send", Job.study_uid == study_uid))
        completed = session.scalar(select(CompletionEvent.completed_at).where(CompletionEvent.study_uid == study_uid))
    return pipeline, send, completed


def print_timeline(receive_s: float, pipeline: Job, send: Job, completed: datetime | None) -> None:
    timings = pipeline.result["timings"]
    queue_wait = (pipeline.started_at - completed).total_seconds() if completed else 0.0
    send_s = (send.finished_at - send.started_at).total_seconds()
    steps = {"receive": receive_s, "queue wait": queue_wait, **timings, "send": send_s}
    total = sum(steps.values())
    print(f"  device {pipeline.result.get('device', '?')}")
    for name, seconds in steps.items():
        print(f"  {name:12s} {seconds:8.2f} s  {100 * seconds / total:5.1f} %")
    inference = timings.get("inference", 0.0)
    print(f"  {'total':12s} {total:8.2f} s (quiet period excluded)")
    print(f"  non-inference share {100 * (total - inference) / total:.1f} % (target < 15 %)")

if __name__ == "__main__":
    main()
