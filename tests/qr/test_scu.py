"""The Q/R SCU's errors: refusals are permanent (QueryRefused with the peer's status), an
unreachable peer is transient (DestinationError)."""

from __future__ import annotations

import logging

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


def test_series_move_says_series_and_its_progress_ends_complete(node, storescp, caplog):
    """``retrieve --series`` said "C-MOVE of a study", and its progress stopped at 1/2: the
    final response's counts never reached the progress callback."""
    caplog.set_level(logging.INFO, logger="dicom_node.qr.scu")
    study = node.catalogue.studies["s2"]
    mr = node.catalogue.series["s2"][0]  # 2 instances
    seen: list[RetrieveProgress] = []
    result = retrieve(
        _node(node), study, "move", calling_ae="PYSCU", move_destination=storescp.ae_title, series_uid=mr,
        progress=seen.append,
    )  # fmt: skip
    assert result.ok and result.completed == 2
    assert seen[-1] == RetrieveProgress(remaining=0, completed=2, failed=0, warning=0)
    [line] = [r.getMessage() for r in caplog.records if r.name == "dicom_node.qr.scu"]
    assert line.startswith("C-MOVE of a series from QRNODE: status 0x0000, 2 completed")


def test_identifier_from_keywords_and_tags():
    ds = build_identifier("study", {"PatientName": "DOE*", "0008,0061": "CT\\MR", "StudyDate": ""})
    assert ds.QueryRetrieveLevel == "STUDY" and list(ds.ModalitiesInStudy) == ["CT", "MR"]
    with pytest.raises(ValueError):
        build_identifier("STUDY", {"NoSuchKeyword": "x"})
    with pytest.raises(ValueError):
        build_identifier("WARD", {})
