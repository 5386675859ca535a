"""Notification benchmark: stored result → ORU^R01 acknowledged by an MLLP peer on loopback
(hl7apy's MLLP server in a subprocess, answering AA), through the outbox relay and Celery send
workers on the embedded broker.

    TCP_NODELAY=1 .venv/bin/python bench/notify.py [--results 200] [--workers 4] [--relay-interval 0.2]

Latency: results stored one at a time (every ``--gap`` s); p50/p95 of the notify job's
creation (committed with the stored result) → its "finished" event (written once the AA
arrived), with the p95's ratio to the 200 ms target. Throughput: as many results stored in one
transaction; notifications/s from that commit to the last ACK. The SR is encoded once and
every notification reads it from the store, as a real one does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dicom_node.config import load_settings  # noqa: E402
from dicom_node.jobs.imaging import encode_result  # noqa: E402
from dicom_node.node import Node  # noqa: E402
from dicom_node.queue.outbox import NewJob, add_jobs  # noqa: E402
from dicom_node.store.filestore import FileStore  # noqa: E402
from dicom_node.store.local import store_dataset  # noqa: E402
from dicom_node.store.models import Job, JobEvent, utcnow  # noqa: E402
from tests.notify.helpers import MllpPeer, two_lesion_result  # noqa: E402
from tests.tools import free_port  # noqa: E402

TARGET_P95_S = 0.200


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def notices(node: Node, stored: list[dict[str, str]], count: int) -> list[int]:
    """``count`` notify jobs for the stored result, committed in one transaction."""
    job = NewJob(kind="notify", queue="send", study_uid="1.2.3", series_uid="1.2.3.4", pipeline="ct-lesion",
                 destination="ris", params={"pipeline_job": 0, "results": stored, "urgent": False})  # fmt: skip
    with node.index.sessions.begin() as session:
        return [row.id for row in add_jobs(session, [job] * count, node.settings.queue.max_attempts)]


def finished(node: Node, ids: list[int]) -> dict[int, float]:
    """Seconds from creation to the finished event, per succeeded job."""
    with node.index.sessions() as session:
        created = dict(session.execute(select(Job.id, Job.created_at).where(Job.id.in_(ids), Job.state == "succeeded")).all())
        done = dict(session.execute(select(JobEvent.job_id, JobEvent.at).where(JobEvent.job_id.in_(list(created)), JobEvent.event == "finished")).all())
    return {i: (done[i] - created[i]).total_seconds() for i in created if i in done}


def wait_all(node: Node, ids: list[int], timeout: float = 600) -> dict[int, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = finished(node, ids)
        if len(got) == len(ids):
            return got
        time.sleep(0.1)
    raise SystemExit(f"only {len(finished(node, ids))} of {len(ids)} notifications acknowledged in {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--relay-interval", type=float, default=0.2, help="queue.relay_interval_s (the default setting)")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between results in the latency run (above the service time, so no queue builds up)")
    args = parser.parse_args()
    from dicom_node import synthetic as syn
    from tests.notify.helpers import CT_SHAPE, CT_SPACING, STUDY

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        peer = MllpPeer(work / "ris")
        peer.start()
        config = {
            "data_dir": str(work / "node"), "host": "127.0.0.1", "port": free_port(), "min_free_disk_mb": 0,
            "log_level": "WARNING", "destinations": {"ris": peer.destination()},
            "queue": {"relay_interval_s": args.relay_interval, "embedded_workers": {"send": args.workers}},
        }  # fmt: skip
        path = work / "node.yaml"
        path.write_text(yaml.safe_dump(config))
        node = Node(load_settings(path), config_path=path, workers=True)
        node.start()
        try:
            objects = encode_result(two_lesion_result(syn.ct_series(STUDY, shape=CT_SHAPE, spacing=CT_SPACING, seed=1)), urgent=True)
            store = FileStore(node.settings.store_dir)
            stored = [{"sop_instance_uid": r.sop_instance_uid, "sop_class_uid": r.sop_class_uid, "path": r.path}
                      for r in (store_dataset(store, node.index, ds) for ds in objects)]  # fmt: skip
            wait_all(node, notices(node, stored, args.workers))  # warm-up: every worker has sent once
            latency_ids = []
            for _ in range(args.results):
                latency_ids += notices(node, stored, 1)
                time.sleep(args.gap)
            latencies = list(wait_all(node, latency_ids).values())
            t0 = utcnow()
            burst = notices(node, stored, args.results)
            wait_all(node, burst)
            with node.index.sessions() as session:
                last = max(session.scalars(select(JobEvent.at).where(JobEvent.job_id.in_(burst), JobEvent.event == "finished")))
            rate = len(burst) / (last - t0).total_seconds()
        finally:
            node.stop()
            peer.stop()
    p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
    print(f"{args.results} results, {args.workers} send workers, relay interval {args.relay_interval:g} s, MLLP peer on loopback")
    print(f"stored → ACK: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms ({p95 / TARGET_P95_S:.2f} × the 200 ms target)")
    print(f"burst of {args.results}: {rate:.1f} notifications/s")


if __name__ == "__main__":
    main()
