"""Replicas sharing one PostgreSQL index: their completion detectors, routers and outbox relays
run side by side, and every study is completed once, routed once, and every job handed out
once (issue 18 item 1). Each replica here is a thread with an index (an engine) of its own —
what matters is that they are separate database sessions racing on the same rows."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from dicom_node.config import QueueSettings, load_settings
from dicom_node.queue.outbox import Relay
from dicom_node.routing.completion import CompletionDetector
from dicom_node.routing.router import Router
from dicom_node.store.filestore import FileStore
from dicom_node.store.index import Index
from dicom_node.store.models import CompletionEvent, Job
from dicom_node.synthetic import StudySpec, ct_series
from tests.routing.helpers import QUEUES, Routing

REPLICAS = 4
STUDIES = 6


def race(rounds: Callable[[int], None]) -> None:
    """Run ``rounds(replica)`` for every replica at the same moment; re-raise what one raised."""
    start, errors = threading.Barrier(REPLICAS), []

    def run(replica: int) -> None:
        start.wait()
        try:
            rounds(replica)
        except Exception as exc:  # noqa: BLE001 - collected, re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(REPLICAS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    if errors:
        raise errors[0]


@pytest.fixture
def shared(tmp_path, postgres_server):
    with postgres_server.database() as url:
        settings = load_settings(
            data_dir=tmp_path / "node", port=0, host="127.0.0.1", min_free_disk_mb=0, database_url=url,
            destinations={"pacs": {"kind": "dicom", "ae_title": "PACS", "host": "127.0.0.1", "port": 104}},
            rules=[{"name": "to-pacs", "match": {"Modality": "CT"}, "forward": ["pacs"]}],
        )  # fmt: skip
        node = Routing(settings, Index(url), FileStore(settings.store_dir))
        studies = [StudySpec(patient_id=f"P{n}") for n in range(STUDIES)]
        for spec in studies:
            node.keep(ct_series(spec, shape=(3, 8, 8), lesion_radius=None))
        replicas = [Index(url) for _ in range(REPLICAS)]
        yield node, replicas, [s.study_uid for s in studies]
        for index in replicas:
            index.close()
        node.index.close()


def test_each_study_completes_routes_and_dispatches_once_among_replicas(shared):
    node, replicas, study_uids = shared
    detectors = [CompletionDetector(index, node.settings.completion.model_copy(update={"quiet_period_s": 0.001})) for index in replicas]
    race(lambda n: [detectors[n].check_once() for _ in range(5)])
    with node.index.sessions() as session:
        events = Counter(session.scalars(select(CompletionEvent.study_uid)))
    assert events == Counter(study_uids)

    routers = [Router(node.settings, index, queue_of=QUEUES.__getitem__, version_of=lambda _: "1") for index in replicas]
    race(lambda n: [routers[n].route_pending() for _ in range(3)])
    with node.index.sessions() as session:
        jobs = Counter(session.scalars(select(Job.study_uid).where(Job.kind == "forward")))
        unrouted = session.scalar(select(func.count(CompletionEvent.id)).where(CompletionEvent.routed_at.is_(None)))
    assert jobs == Counter(study_uids)  # one forward job per study and rule
    assert unrouted == 0

    sent: list[int] = []
    lock = threading.Lock()

    def send(job_id: int, queue: str, priority: int) -> None:
        with lock:
            sent.append(job_id)

    relays = [Relay(index, QueueSettings(), send) for index in replicas]
    race(lambda n: relays[n].dispatch_due())
    assert sorted(sent) == sorted(set(sent)) and len(sent) == STUDIES


def test_a_relay_that_dies_holding_a_job_leaves_it_due_for_another(shared):
    """The row stays locked from choice to mark; a replica killed while it sends leaves the
    job pending (its transaction rolls back), and the next relay hands it out at once."""
    node, replicas, study_uids = shared
    node.route(*study_uids)

    def die(job_id: int, queue: str, priority: int) -> None:
        raise SystemExit("killed")  # what a kill between choosing and marking amounts to

    with pytest.raises(SystemExit):
        Relay(replicas[0], QueueSettings(), die).dispatch_due()
    taken: list[int] = []
    assert Relay(replicas[1], QueueSettings(), lambda j, q, p: taken.append(j)).dispatch_due() == STUDIES
    assert len(set(taken)) == STUDIES
