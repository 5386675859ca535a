"""The Q/R SCU's errors: refusals are permanent (QueryRefused with the peer's status), an
unreachable peer is transient (DestinationError)."""

from __future__ import annotations

import pytest

from dicom_node.config import DicomDestination
from dicom_node.errors import DestinationError, PermanentError
from dicom_node.qr.scu import QueryRefused, RetrieveProgress, build_identifier, query, retrieve
from tests.conftest import free_port
from tests.qr.conftest import NODE_AE


def _node(node) -> DicomDestination:
    return DicomDestination(ae_title=NODE_AE, host="127.0.0.1", port=node.port)


def test_refused_query_is_permanent(node):
    with pytest.raises(QueryRefused) as caught:
        query(_node(node), "SERIES", {"Modality": "CT"}, calling_ae="PYSCU")  # no StudyInstanceUID
    assert caught.value.status == 0xA900 and isinstance(caught.value, PermanentError)
    assert "StudyInstanceUID" in str(caught.value)


def test_unknown_move_destination_is_refused(node):
    with pytest.raises(QueryRefused) as caught:
        retrieve(_node(node), node.catalogue.studies["s1"], "move", calling_ae="PYSCU", move_destination="NOBODY")
    assert caught.value.status == 0xA801


def test_unreachable_peer_is_transient():
    with pytest.raises(DestinationError):
        query(DicomDestination(ae_title="GONE", host="127.0.0.1", port=free_port()), "STUDY", {}, timeout_s=5)


def test_move_reports_progress_and_counts(node, storescp):
    seen: list[RetrieveProgress] = []
    result = retrieve(
        _node(node), node.catalogue.studies["s2"], "move", calling_ae="PYSCU",
        move_destination=storescp.ae_title, progress=seen.append,
    )  # fmt: skip
    assert result.ok and (result.completed, result.failed, result.warning) == (3, 0, 0)
    assert seen and seen[0].remaining + seen[0].completed == 3  # the first pending response always goes


def test_identifier_from_keywords_and_tags():
    ds = build_identifier("study", {"PatientName": "DOE*", "0008,0061": "CT\\MR", "StudyDate": ""})
    assert ds.QueryRetrieveLevel == "STUDY" and list(ds.ModalitiesInStudy) == ["CT", "MR"]
    with pytest.raises(ValueError):
        build_identifier("STUDY", {"NoSuchKeyword": "x"})
    with pytest.raises(ValueError):
        build_identifier("WARD", {})
