"""The node as Q/R SCU against a real Orthanc, and Orthanc as SCU against the node: query,
C-MOVE and C-GET each way that matters, fetch_priors, and a SEG the node made found and
moved like any received instance."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from sqlalchemy import select

from dicom_node.encoders.algorithm import AlgorithmInfo
from dicom_node.encoders.seg import encode_segmentation
from dicom_node.qr.priors import fetch_priors
from dicom_node.qr.scu import query, retrieve
from dicom_node.qr.sink import IndexSink
from dicom_node.receive.scp import NodeServer
from dicom_node.store.header import read_header
from dicom_node.store.models import Instance, Series, Study
from dicom_node.synthetic import StudySpec, ct_series, mr_series, write_series
from pipelines.base import Code, ImagingResult, SegmentationOutput, SegmentLabel
from tests.conftest import wait_for
from tests.qr.conftest import NODE_AE, start_node
from tests.orthanc import Orthanc


@dataclass
class Setup:
    node: NodeServer
    orthanc: Orthanc
    on_orthanc: dict[str, str]  # name → study UID
    current: str  # the node's own study, whose priors are on Orthanc
    seg_study: str  # a study the node holds with a SEG it made


def _study(pid: str, date: str, kind: str, n: int, desc: str) -> tuple[StudySpec, list[Dataset]]:
    spec = StudySpec(pid, "ORTHANC^TEST", study_date=date, description=desc, accession=f"A{date}")
    make = ct_series if kind == "CT" else mr_series
    return spec, make(spec, shape=(n, 16, 16), lesion_radius=None)


def _keep(node: NodeServer, datasets: list[Dataset], made_by_node: bool = False) -> None:
    records = []
    for ds in datasets:
        path = node.store.path_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(path, enforce_file_format=True)
        record = read_header(path)
        record.made_by_node = made_by_node
        records.append(record)
    node.index.add_instances(records)


def _seg(source: list[Dataset]) -> Dataset:
    mask = np.zeros((len(source), 16, 16), dtype=np.uint8)
    mask[:, 4:8, 4:8] = 1
    label = SegmentLabel(
        "Lesion",
        Code("49755003", "SCT", "Morphologically Abnormal Structure"),
        Code("52988006", "SCT", "Lesion"),
    )
    result = ImagingResult(
        pipeline="qr-test", version="1.0", model_name="none", model_checksum="sha256:00", source=source,
        segmentation=SegmentationOutput(mask=mask, labels={1: label}),
    )  # fmt: skip
    return encode_segmentation(result, AlgorithmInfo.from_result(result))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("orthanc")
    node = start_node(tmp / "node")
    try:
        orthanc = Orthanc(tmp / "orthanc", {"node": (NODE_AE, node.port)})
    except BaseException:
        node.stop()
        raise
    node.settings.destinations["orthanc"] = orthanc.destination
    try:
        on_orthanc = {}
        for name, (pid, date, kind, n) in {
            "prior_ct": ("ORT1", "20240101", "CT", 3),
            "prior_mr": ("ORT1", "20230101", "MR", 2),
            "old_ct": ("ORT1", "20100101", "CT", 1),
            "for_move": ("ORT2", "20250202", "MR", 2),
            "for_get": ("ORT2", "20250101", "CT", 2),
        }.items():
            spec, datasets = _study(pid, date, kind, n, name)
            orthanc.upload(write_series(datasets, tmp / "upload" / name))
            on_orthanc[name] = spec.study_uid
        current, datasets = _study("ORT1", "20250601", "CT", 2, "current")
        _keep(node, datasets)
        seg_spec, source = _study("ORT3", "20250615", "CT", 2, "with seg")
        _keep(node, source)
        _keep(node, [_seg(source)], made_by_node=True)
        yield Setup(node, orthanc, on_orthanc, current.study_uid, seg_spec.study_uid)
    finally:
        orthanc.stop()
        node.stop()


def _held(node: NodeServer, study_uid: str) -> int:
    return next((s.instances for s in node.index.studies() if s.study_uid == study_uid), 0)


def test_query_orthanc(setup):
    found = query(
        setup.orthanc.destination, "STUDY",
        {"PatientID": "ORT1", "StudyDate": "20200101-", "StudyInstanceUID": "", "ModalitiesInStudy": "",
         "NumberOfStudyRelatedInstances": ""},
        calling_ae=NODE_AE,
    )  # fmt: skip
    by_uid = {ds.StudyInstanceUID: ds for ds in found}
    assert set(by_uid) == {setup.on_orthanc["prior_ct"], setup.on_orthanc["prior_mr"]}
    assert int(by_uid[setup.on_orthanc["prior_ct"]].NumberOfStudyRelatedInstances) == 3


def test_move_from_orthanc_into_node(setup):
    uid = setup.on_orthanc["for_move"]
    seen = []
    result = retrieve(setup.orthanc.destination, uid, "move", calling_ae=NODE_AE, progress=seen.append)
    assert result.ok and result.completed == 2
    wait_for(lambda: _held(setup.node, uid) == 2, "moved study indexed by the node")


def test_get_from_orthanc_into_node(setup):
    uid = setup.on_orthanc["for_get"]
    sink = IndexSink(setup.node.store, setup.node.index)
    result = retrieve(setup.orthanc.destination, uid, "get", sink, calling_ae=NODE_AE)
    assert result.ok and result.completed == 2 and len(sink.stored) == 2
    assert _held(setup.node, uid) == 2
    assert all(Path(p).exists() for p in setup.node.index.instance_paths(uid))


def test_orthanc_queries_and_moves_a_node_result(setup):
    """Orthanc finds the node's SEG series and pulls the study (source + SEG) by C-MOVE."""
    orthanc, uid = setup.orthanc, setup.seg_study
    answers = orthanc.post(
        "/modalities/node/query",
        {"Level": "Series", "Query": {"StudyInstanceUID": uid, "Modality": "SEG", "SeriesInstanceUID": ""}},
    )
    content = orthanc.http.get(f"/queries/{answers['ID']}/answers?expand").json()
    assert len(content) == 1 and content[0]["0008,0060"]["Value"] == "SEG"
    orthanc.post(
        "/modalities/node/move",
        {"Level": "Study", "Resources": [{"StudyInstanceUID": uid}], "TargetAet": orthanc.ae_title, "Synchronous": True},
    )
    assert orthanc.study_instances(uid) == 3


@pytest.mark.parametrize("method", ["get", "move"])
def test_fetch_priors(setup, method):
    node = setup.node
    for uid in setup.on_orthanc.values():  # each method starts from a node without them
        node.index.remove_instances(_sop_uids(node, uid))
    priors = fetch_priors(
        node.settings, node.index, setup.current, "orthanc", modality="CT", lookback_days=5 * 365, max_count=3,
        method=method,
    )  # fmt: skip
    assert priors == [setup.on_orthanc["prior_ct"]]  # the MR is another modality, 2010 too old
    assert _held(node, setup.on_orthanc["prior_ct"]) == 3
    assert _held(node, setup.on_orthanc["old_ct"]) == 0



def _sop_uids(node: NodeServer, study_uid: str) -> list[str]:
    with node.index.sessions() as session:
        return list(
            session.scalars(
                select(Instance.sop_instance_uid)
                .join(Series, Instance.series_pk == Series.id)
                .join(Study, Series.study_pk == Study.id)
                .where(Study.study_uid == study_uid)
            )
        )
