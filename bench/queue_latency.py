"""Queue benchmark: N small studies through rules → Celery → forward to a DCMTK storescp, on
Redis and on the embedded (filesystem) broker in the same run.

    TCP_NODELAY=1 .venv/bin/python bench/queue_latency.py [--studies 200]

Prints p50/p95 of study-complete → task-start latency (from the index's timeline) and
studies/s (first completion → last job finished), and the embedded/Redis p95 ratio.
The pipeline step is a forward job: the lightest job there is, so the figures are queueing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.tools import DCMTK_ENV as ENV  # noqa: E402
from tests.tools import free_port  # noqa: E402
from dicom_node.config import load_settings  # noqa: E402
from dicom_node.node import Node  # noqa: E402
from dicom_node.store.models import CompletionEvent, Job, JobEvent, utcnow  # noqa: E402
from dicom_node.synthetic import StudySpec, ct_series, write_series  # noqa: E402

def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _all_succeeded(node: Node, count: int) -> bool:
    with node.index.sessions() as session:
        states = session.scalars(select(Job.state)).all()
    return len(states) == count and all(s == "succeeded" for s in states)


def run(broker_url: str | None, studies: list[list[Path]], work: Path, pacs_port: int) -> dict[str, float]:
    config = {
        "data_dir": str(work / "node"), "host": "127.0.0.1", "port": free_port(), "min_free_disk_mb": 0, "log_level": "WARNING",
        "completion": {"quiet_period_s": 0.5, "poll_interval_s": 0.1},
        "destinations": {"pacs": {"kind": "dicom", "ae_title": "PACS", "host": "127.0.0.1", "port": pacs_port}},
        "rules": [{"name": "forward-ct", "match": {"Modality": "CT"}, "forward": ["pacs"]}],
        "queue": {"broker_url": broker_url, "relay_interval_s": 0.2, "embedded_workers": {"send": 2}},
    }  # fmt: skip
    work.mkdir(parents=True)
    path = work / "node.yaml"
    path.write_text(yaml.safe_dump(config))
    node = Node(load_settings(path), config_path=path, workers=True)
    node.start()
    try:
        # One study first, so the figures are the steady state, not the workers' start-up.
        warmup, *studies = studies
        subprocess.run(["storescu", "-aec", "DICOM_NODE", "127.0.0.1", str(node.port), *map(str, warmup)], env=ENV, check=True)
        while not _all_succeeded(node, 1):
            time.sleep(0.1)
        warmed_up = utcnow()
        for files in studies:
            subprocess.run(["storescu", "-aec", "DICOM_NODE", "127.0.0.1", str(node.port), *map(str, files)], env=ENV, check=True)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not _all_succeeded(node, len(studies) + 1):
            time.sleep(0.2)
        with node.index.sessions() as session:
            completed = dict(
                session.execute(
                    select(CompletionEvent.study_uid, CompletionEvent.completed_at).where(CompletionEvent.completed_at > warmed_up)
                ).all()
            )
            started = {}
            for study_uid, at in session.execute(select(JobEvent.study_uid, JobEvent.at).where(JobEvent.event == "started").order_by(JobEvent.id)):
                started.setdefault(study_uid, at)
            finished = session.scalars(select(Job.finished_at).where(Job.study_uid.in_(list(completed)))).all()
    finally:
        node.stop()
    latencies = [(started[uid] - completed[uid]).total_seconds() * 1000 for uid in completed if uid in started]
    span = (max(finished) - min(completed.values())).total_seconds()
    return {"p50": statistics.median(latencies), "p95": percentile(latencies, 0.95), "studies_per_s": len(latencies) / span, "n": len(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--studies", type=int, default=200, help="measured studies (one more warms up)")
    parser.add_argument("--redis-port", type=int, default=free_port())
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dicom-node-qbench-"))
    redis = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(args.redis_port), "--save", ""], stdout=subprocess.DEVNULL)
    pacs_port = free_port()
    (tmp / "pacs").mkdir()
    pacs = subprocess.Popen(["storescp", "-od", str(tmp / "pacs"), "+xa", "-aet", "PACS", str(pacs_port)], env=ENV, stdout=subprocess.DEVNULL)
    try:
        studies = [write_series(ct_series(StudySpec(), shape=(2, 16, 16), lesion_radius=None, seed=k), tmp / "src" / str(k)) for k in range(args.studies + 1)]
        results = {}
        for name, url in (("redis", f"redis://127.0.0.1:{args.redis_port}/0"), ("embedded", None)):
            results[name] = run(url, studies, tmp / name, pacs_port)
            r = results[name]
            print(f"{name:8s} {r['n']:4.0f} studies  complete→start p50 {r['p50']:6.1f} ms  p95 {r['p95']:6.1f} ms  {r['studies_per_s']:5.1f} studies/s", flush=True)
        print(f"embedded/redis p95 ratio {results['embedded']['p95'] / results['redis']['p95']:.2f} (target ≤ 5; Redis p95 target < 100 ms)")
    finally:
        redis.terminate()
        pacs.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
