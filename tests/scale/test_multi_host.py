"""Past one machine, on one machine (issue 18 item 4): two node replicas and two workers as
separate processes with separate working folders, one PostgreSQL index and one Redis broker;
four senders split every study across both replicas, and one replica is killed with SIGKILL
mid-ingest. What a sender saw acknowledged is stored and indexed, every study completes once,
is forwarded once (the light pipeline: a ``forward`` rule to a fake PACS) and every instance
reaches the PACS.

The killed replica is started again on its folder afterwards, as a supervisor would: its
last index batch (files acknowledged but not yet indexed when it died) is indexed by its
start-up reconciliation."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pydicom
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from dicom_node.store.models import CompletionEvent, Instance, Job, JobEvent
from dicom_node.synthetic import StudySpec, ct_series, write_series
from tests.conftest import dcmtk, require, wait_for
from tests.scale.cluster import Cluster

STUDIES = 8
SLICES = 6  # per series; two series per study, one sent to each replica


def send_one(path: Path, port: int) -> bool:
    """One instance on one association: True when the node acknowledged it (status success)."""
    return dcmtk("storescu", "-to", "10", "-aec", "DICOM_NODE", "127.0.0.1", str(port), str(path), timeout=60).returncode == 0


def test_two_replicas_two_workers_one_killed_mid_ingest_lose_and_double_nothing(tmp_path, postgres_server, private_redis, fake_pacs):
    require("storescu", "echoscu")
    studies: list[tuple[str, list[Path], list[Path]]] = []
    for n in range(STUDIES):
        spec = StudySpec(patient_id=f"SCALE{n}")
        first = write_series(ct_series(spec, shape=(SLICES, 16, 16), lesion_radius=None, series_number=1), tmp_path / "in" / f"{n}a")
        second = write_series(ct_series(spec, shape=(SLICES, 16, 16), lesion_radius=None, series_number=2, seed=1), tmp_path / "in" / f"{n}b")
        studies.append((spec.study_uid, first, second))

    with postgres_server.database() as url:
        cluster = Cluster(
            tmp_path / "hosts", url, private_redis.url,
            settings={
                "completion": {"quiet_period_s": 4, "poll_interval_s": 0.5},
                "destinations": {"pacs": {"kind": "dicom", **fake_pacs.destination()}},
                "rules": [{"name": "to-pacs", "match": {"Modality": "CT"}, "forward": ["pacs"]}],
            },
        )  # fmt: skip
        a, b = cluster.add_replica(), cluster.add_replica()
        cluster.add_worker(queues="send,cpu")
        cluster.add_worker(queues="send,cpu")
        cluster.start()  # all four at once on the empty database: migrations under the advisory lock
        try:
            acknowledged: list[Path] = []
            lock, killed = threading.Lock(), threading.Event()
            kill_after = STUDIES * SLICES // 2  # a quarter of the instances in

            def sender(k: int) -> None:
                """Sender k sends studies k, k+4: series 1 to replica a, series 2 to b,
                interleaved; what a refuses (killed) it sends to b, as a load balancer would."""
                for _, first, second in studies[k::4]:
                    for pair in zip(first, second):
                        for path, replica in zip(pair, (a, b)):
                            ok = not (replica is a and killed.is_set()) and send_one(path, replica.port)
                            if not ok:
                                ok = send_one(path, b.port)
                            assert ok, f"{path.name} refused by both replicas"
                            with lock:
                                acknowledged.append(path)
                                if len(acknowledged) == kill_after:
                                    a.kill()
                                    killed.set()

            senders = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
            for thread in senders:
                thread.start()
            for thread in senders:
                thread.join(timeout=600)
            assert killed.is_set() and len(acknowledged) == STUDIES * SLICES * 2
            a.start()  # back on its folder: reconciliation indexes its last batch

            engine = create_engine(url)
            sent = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in acknowledged}

            def forwarded_all() -> bool:
                with Session(engine) as session:
                    jobs = session.scalars(select(Job).where(Job.kind == "forward")).all()
                    return len(jobs) >= STUDIES and all(j.state == "succeeded" for j in jobs)

            wait_for(forwarded_all, "every study forwarded", timeout=180, interval=0.5)
            with Session(engine) as session:
                indexed = set(session.scalars(select(Instance.sop_instance_uid)))
                completions = Counter(session.scalars(select(CompletionEvent.study_uid)))
                jobs = session.scalars(select(Job)).all()
                finished = Counter(session.scalars(select(JobEvent.job_id).where(JobEvent.event == "finished")))
            engine.dispose()

            assert sent <= indexed, f"{len(sent - indexed)} acknowledged instances not indexed"
            assert completions == Counter(uid for uid, _, _ in studies), "a study completed twice or never"
            assert Counter(j.study_uid for j in jobs) == Counter(uid for uid, _, _ in studies), "one job per study and rule"
            assert all(j.kind == "forward" and j.state == "succeeded" for j in jobs)
            assert all(finished[j.id] == 1 for j in jobs), "a job ran to its end twice"
            wait_for(lambda: len(fake_pacs.files()) >= len(sent), "the PACS has every instance", timeout=60)
            received = [pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in fake_pacs.files()]
            assert Counter(received) == Counter(sent), "an instance sent twice or never"
        except BaseException:
            print(cluster.logs())
            raise
        finally:
            cluster.stop()
