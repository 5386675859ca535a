"""Orders in: the RIS sends ORM^O01 / OMI^O23 over MLLP to the node's listener (a plain socket
here, the ACK read with hl7apy: neither is the python-hl7 the listener uses). The order is
recorded by accession number, routing rules test ``order.*``, and a STAT order moves the study's
waiting jobs to the front."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hl7apy.parser import parse_message
from sqlalchemy import select

from dicom_node.config import load_settings
from dicom_node.errors import ConfigError
from dicom_node.node import Node
from dicom_node.orders.listener import OrderListener
from dicom_node.queue.outbox import NewJob, add_jobs
from dicom_node.routing.router import Router
from dicom_node.store.filestore import FileStore
from dicom_node.store.index import Index
from dicom_node.store.local import store_dataset
from dicom_node.store.models import CompletionEvent, Job, JobEvent, Order
from dicom_node.synthetic import StudySpec, ct_series
from tests.conftest import free_port


def seg(name: str, fields: dict[int, str]) -> str:
    """A segment with ``fields`` at their HL7 positions (the rest empty)."""
    return "|".join([name, *(fields.get(n, "") for n in range(1, max(fields) + 1))])


OMI_STAT = (
    "MSH|^~\\&|RIS|HOSP|DICOM_NODE|RAD|20260315080000||OMI^O23^OMI_O23|MSG0001|P|2.5.1",
    "PID|1||P42^^^HOSP^MR||DOE^JANE",
    "ORC|NW|PL777^RIS|FL777^RIS",
    "TQ1|1||||||||S^Stat^HL70485",
    seg("OBR", {1: "1", 2: "PL777^RIS", 3: "FL777^RIS", 4: "CT^CT procedure^L", 44: "CTCHEST^CT chest without contrast^L"}),
    "IPC|ACC9^HOSP|RP1|1.2.826.0.1.3680043.8.498.999|SPS1",
)
ORM_ROUTINE = (
    "MSH|^~\\&|RIS|HOSP|DICOM_NODE|RAD|20260315080000||ORM^O01|MSG0002|P|2.3.1",
    "PID|1||P43",
    "ORC|NW|PL778",
    seg("OBR", {1: "1", 2: "PL778", 4: "MRBRAIN^MR brain^L", 18: "ACC10", 27: "^^^^^R"}),
)


def mllp(port: int, *segments: str) -> object:
    """Send one message with MLLP framing and return hl7apy's parse of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"\x0b" + "\r".join(segments).encode() + b"\r\x1c\r")
        data = b""
        while not data.endswith(b"\x1c\r"):
            chunk = conn.recv(4096)
            assert chunk, "the listener closed without an ACK"
            data += chunk
    return parse_message(data[1:-2].decode(), find_groups=False)


@pytest.fixture
def index(tmp_path: Path) -> Index:
    return Index(f"sqlite:///{tmp_path / 'index.sqlite'}")


@pytest.fixture
def listener(index: Index) -> Iterator[OrderListener]:
    server = OrderListener(index, "127.0.0.1", 0)
    server.start()
    yield server
    server.stop()


def store_study(tmp_path: Path, index: Index, accession: str) -> str:
    spec = StudySpec(accession=accession)
    store = FileStore(tmp_path / "store")
    for ds in ct_series(spec, shape=(8, 32, 32), lesion_radius=2.0, seed=3):
        store_dataset(store, index, ds, made_by_node=False)
    return spec.study_uid


def test_a_stat_order_is_recorded_and_moves_the_studys_waiting_jobs_to_the_front(tmp_path, index, listener):
    study_uid = store_study(tmp_path, index, "ACC9")
    with index.sessions.begin() as session:
        waiting, running = add_jobs(session, [NewJob(kind="pipeline", queue="gpu", study_uid=study_uid, priority=5)] * 2, 3)
        running.state = "running"
        other = add_jobs(session, [NewJob(kind="pipeline", queue="gpu", study_uid="1.2.3", priority=5)], 3)[0]
    ack = mllp(listener.port, *OMI_STAT)
    assert ack.msa.msa_1.value == "AA" and ack.msa.msa_2.value == "MSG0001"
    with index.sessions() as session:
        order = session.scalars(select(Order)).one()
        priorities = {j.id: j.priority for j in session.scalars(select(Job))}
        moved = session.scalars(select(JobEvent).where(JobEvent.event == "priority")).all()
    assert (order.accession_number, order.priority, order.procedure_code, order.procedure) == ("ACC9", "stat", "CTCHEST", "CT chest without contrast")
    assert (order.placer_order, order.patient_id, order.study_uid, order.order_control) == ("PL777", "P42", "1.2.826.0.1.3680043.8.498.999", "NW")
    assert priorities == {waiting.id: 0, running.id: 5, other.id: 5}, "only the study's waiting job moves"
    assert [e.job_id for e in moved] == [waiting.id]


def test_an_orm_is_read_and_a_change_replaces_the_order(index, listener):
    assert mllp(listener.port, *ORM_ROUTINE).msa.msa_1.value == "AA"
    changed = (ORM_ROUTINE[0], ORM_ROUTINE[1], "ORC|XO|PL778", ORM_ROUTINE[3].replace("^^^^^R", "^^^^^S"))
    assert mllp(listener.port, *changed).msa.msa_1.value == "AA"
    with index.sessions() as session:
        [order] = session.scalars(select(Order)).all()
    assert (order.accession_number, order.procedure_code, order.priority, order.order_control) == ("ACC10", "MRBRAIN", "stat", "XO")


@pytest.mark.parametrize(
    ("segments", "reason"),
    [
        (("MSH|^~\\&|RIS|HOSP|DICOM_NODE|RAD|20260315080000||ADT^A01|MSG9|P|2.5.1", "PID|1||P1"), "not an imaging order"),
        (ORM_ROUTINE[:3] + ("OBR|1|PL778||MRBRAIN^MR brain^L",), "no accession number"),
    ],
)
def test_a_message_that_is_no_usable_order_gets_ae_with_the_reason(index, listener, segments, reason):
    ack = mllp(listener.port, *segments)
    assert ack.msa.msa_1.value == "AE" and reason in ack.msa.msa_3.value
    with index.sessions() as session:
        assert session.scalars(select(Order)).all() == []


def test_rules_see_the_order_and_a_stat_order_routes_first(tmp_path, index, listener):
    settings = load_settings(data_dir=tmp_path, rules=[
        {"name": "chest", "match": {"order.procedure_code": "CTCHEST"}, "pipeline": "ct-lesion"},
        {"name": "brain", "match": {"order.procedure_code": "MRBRAIN"}, "pipeline": "mr-lesion"},
    ])  # fmt: skip
    assert mllp(listener.port, *OMI_STAT).msa.msa_1.value == "AA"
    study_uid = store_study(tmp_path, index, "ACC9")
    with index.sessions.begin() as session:
        session.add(CompletionEvent(study_uid=study_uid))
    assert Router(settings, index, queue_of=lambda name: "gpu", version_of=lambda name: "1.0").route_pending() == 1
    with index.sessions() as session:
        [job] = session.scalars(select(Job)).all()
    assert (job.rule, job.priority) == ("chest", 0), "routine rule, STAT order"


def test_order_keys_are_checked_in_rules(tmp_path):
    with pytest.raises(ConfigError, match="order.bogus"):
        load_settings(data_dir=tmp_path, rules=[{"name": "x", "match": {"order.bogus": 1}, "pipeline": "p"}])


def test_serve_runs_the_order_listener_when_a_port_is_set(tmp_path):
    port = free_port()
    settings = load_settings(data_dir=tmp_path / "node", host="127.0.0.1", port=0, receivers=1, min_free_disk_mb=0,
                             orders={"host": "127.0.0.1", "port": port})  # fmt: skip
    node = Node(settings, workers=False)
    node.start()
    try:
        assert mllp(port, *ORM_ROUTINE).msa.msa_1.value == "AA"
    finally:
        node.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
