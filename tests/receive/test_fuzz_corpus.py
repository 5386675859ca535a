"""Issue 12: one bad instance must not stop routing. A corpus of 360 damaged instances
(:mod:`tests.receive.mutate`, made from a seed at test time) goes to a running node with routing;
every one is answered with a documented status, the node keeps serving, whatever it stored is
readable element by element (as the router reads a series' first instance), and a normal CT
study sent afterwards is routed into a job."""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
import yaml
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import Verification
from sqlalchemy import select

from dicom_node.config import load_settings
from dicom_node.net import NO_DELAY_HANDLER, pause_reactor
from dicom_node.node import Node
from dicom_node.routing.rules import series_attributes
from dicom_node.store.models import CompletionEvent, Job
from dicom_node.synthetic import StudySpec, ct_series, write_series
from tests.conftest import dcmtk, require, wait_for
from tests.receive.mutate import KINDS, Mutant, corpus

SEED, PER_KIND = 20261201, 40
DOCUMENTED = {0x0000: "success", 0xA900: "does not match SOP class", 0xC000: "cannot understand"}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    config = tmp_path / "node.yaml"
    settings = {
        "data_dir": str(tmp_path / "node"), "host": "127.0.0.1", "port": 0, "receivers": 1, "min_free_disk_mb": 0,
        "completion": {"quiet_period_s": 0.5, "poll_interval_s": 0.1},
        "rules": [{"name": "ct", "match": {"Modality": "CT"}, "pipeline": "ct_seg"}],
    }  # fmt: skip
    config.write_text(yaml.safe_dump(settings))
    node = Node(load_settings(config), config_path=config, workers=False)
    node.start()
    yield node
    node.stop()


def _associate(port: int, mutants: list[Mutant]) -> tuple[Association, dict[tuple[str, str], int]]:
    """An association with a context for every SOP class and transfer syntax of ``mutants``,
    its reactor held (as the node's own SCU does, :mod:`dicom_node.send.dimse`) so that this
    thread reads every response; the accepted contexts' ids."""
    ae = AE(ae_title="FUZZER")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10  # a hang fails the C-STORE, not the run
    for sop_class, syntax in sorted({(m.sop_class, m.transfer_syntax) for m in mutants}):
        ae.add_requested_context(sop_class, [syntax])
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOM_NODE", evt_handlers=[NO_DELAY_HANDLER])
    assert assoc.is_established and pause_reactor(assoc)
    contexts = {(cx.abstract_syntax, cx.transfer_syntax[0]): cx.context_id for cx in assoc.accepted_contexts}
    return assoc, contexts


def _send_all(port: int, mutants: list[Mutant]) -> dict[str, int | None]:
    """Each mutant's data set as it is, in one association while it lasts; its status, or None
    where no response came (an abort, a hang)."""
    statuses: dict[str, int | None] = {}
    assoc, contexts = _associate(port, mutants)
    try:
        for msg_id, mutant in enumerate(mutants, 1):
            if not assoc.is_established:
                assoc, contexts = _associate(port, mutants)
            request = C_STORE()
            request.MessageID, request.Priority = msg_id, 2
            request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = mutant.sop_class, mutant.sop_instance
            request.DataSet = BytesIO(mutant.data_set)
            assoc.dimse.send_msg(request, contexts[mutant.sop_class, mutant.transfer_syntax])
            _, response = assoc.dimse.get_msg(block=True)
            statuses[mutant.name] = None if response is None else int(response.Status)
    finally:
        assoc.release()
    return statuses


def _still_serving(port: int) -> bool:
    ae = AE()
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOM_NODE")
    ok = assoc.is_established and assoc.send_c_echo().Status == 0
    assoc.release()
    return ok


def _read_in_full(path: Path) -> None:
    """What the router does with a series' first instance, and every value besides."""
    series_attributes(dcmread(path, stop_before_pixels=True), "FUZZER")
    for elem in dcmread(path).iterall():
        elem.value  # noqa: B018 - converting the value is the point


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's, on the damaged values the node reads
def test_damaged_instances_get_documented_statuses_and_the_next_study_is_routed(node, tmp_path, caplog):
    require("storescu")
    mutants = list(corpus(SEED, PER_KIND))
    assert len(mutants) >= 300
    with caplog.at_level(logging.WARNING):
        statuses = _send_all(node.port, mutants)

    unanswered = [m.name for m in mutants if statuses[m.name] is None]
    undocumented = {m.name: hex(s) for m in mutants if (s := statuses[m.name]) is not None and s not in DOCUMENTED}
    unexpected = {m.name: hex(s) for m in mutants if m.expect and (s := statuses[m.name]) not in m.expect}
    assert not unanswered and not undocumented and not unexpected, (unanswered, undocumented, unexpected)
    assert "failed unexpectedly" not in caplog.text  # every refusal is one the node meant
    outcomes = Counter((m.name.split("-")[0], statuses[m.name]) for m in mutants)
    for kind in KINDS:  # the corpus has teeth: every kind of damage is refused somewhere
        assert any(outcomes[(kind, status)] for status in (0xA900, 0xC000)), (kind, outcomes)
    assert _still_serving(node.port)

    stored = list(node.server.store.iter_files())
    assert len(stored) == sum(1 for s in statuses.values() if s == 0x0000)  # nothing silently replaced
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in stored:
            _read_in_full(path)

    source = ct_series(StudySpec(), shape=(4, 32, 32), lesion_radius=None)
    study_uid = str(source[0].StudyInstanceUID)
    result = dcmtk("storescu", "-aet", "MODALITY", "-aec", "DICOM_NODE", "127.0.0.1", str(node.port), *map(str, write_series(source, tmp_path / "ct")))
    assert result.returncode == 0, result.stderr
    wait_for(lambda: node.index.force_complete(study_uid), "the normal study indexed", timeout=10)

    def routed_job() -> list[Job]:
        with node.index.sessions() as session:
            return list(session.scalars(select(Job).where(Job.study_uid == study_uid, Job.kind == "pipeline")))

    def unrouted() -> list[str]:
        with node.index.sessions() as session:
            return list(session.scalars(select(CompletionEvent.study_uid).where(CompletionEvent.routed_at.is_(None))))

    [job] = wait_for(routed_job, "the normal study routed into a job", timeout=20)
    assert job.pipeline == "ct_seg"
    wait_for(lambda: not unrouted(), "every completed study routed, the damaged ones' too", timeout=10)
