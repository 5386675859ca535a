"""Transfer syntaxes of retrieve sub-operations: an instance goes out as stored when the peer
accepts that syntax, and is converted losslessly (decompressed, or compressed to a lossless
syntax the peer chose) only when it does not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless, RLELossless
from pynetdicom import AE, build_context, build_role, evt
from pynetdicom.sop_class import CTImageStorage, StudyRootQueryRetrieveInformationModelGet

from dicom_node.store.header import read_header
from dicom_node.synthetic import StudySpec, ct_series
from tests.conftest import dcmtk, require
from tests.qr.conftest import NODE_AE, StoreSCP

@pytest.fixture(scope="module")
def rle_study(node) -> str:
    """One RLE Lossless CT instance, stored compressed."""
    spec = StudySpec("PAT9", "RLE^TEST", study_date="20250505")
    [ds] = ct_series(spec, shape=(1, 16, 16), lesion_radius=None)
    ds.compress(RLELossless)
    path = node.server.store.path_for(spec.study_uid, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    node.server.index.add_instances([read_header(path)])
    return spec.study_uid


@pytest.fixture
def accept_all_scp(tmp_path: Path, node) -> Iterator[StoreSCP]:
    scp = StoreSCP(tmp_path / "all", "ALLSCP", "+xa")
    node.settings.destinations["all"] = scp.destination
    yield scp
    scp.stop()


def _move(node, study: str, destination: str) -> None:
    result = dcmtk(
        "movescu", "-S", "-aec", NODE_AE, "-aem", destination, "127.0.0.1", str(node.port),
        "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_compressed_instance_sent_as_stored_when_accepted(node, rle_study, accept_all_scp):
    require("movescu")
    _move(node, rle_study, accept_all_scp.ae_title)
    [path] = accept_all_scp.files()
    assert dcmread(path).file_meta.TransferSyntaxUID == RLELossless


def test_compressed_instance_decompressed_for_a_peer_refusing_it(node, rle_study, storescp):
    require("movescu")
    storescp.clear()
    _move(node, rle_study, storescp.ae_title)  # storescp accepts uncompressed syntaxes only
    [path] = storescp.files()
    received = dcmread(path)
    assert received.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    [stored] = node.server.index.instance_paths(rle_study)
    assert received.SOPInstanceUID == dcmread(stored).SOPInstanceUID, "same pixels, same instance"
    assert received.pixel_array.shape == (16, 16)


def test_get_compresses_losslessly_to_the_only_syntax_the_requestor_accepted(node):
    """A C-GET requestor whose storage context came out as JPEG-LS Lossless gets JPEG-LS,
    with the very same pixels."""
    study = node.catalogue.studies["s1"]
    received: list[Dataset] = []

    def on_store(event: evt.Event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        received.append(ds)
        return 0x0000

    ae = AE(ae_title="PYSCU")
    contexts = [build_context(StudyRootQueryRetrieveInformationModelGet), build_context(CTImageStorage, [JPEGLSLossless])]
    assoc = ae.associate(
        "127.0.0.1", node.port, contexts=contexts, ae_title=NODE_AE,
        ext_neg=[build_role(CTImageStorage, scp_role=True)], evt_handlers=[(evt.EVT_C_STORE, on_store)],
    )  # fmt: skip
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel, identifier.StudyInstanceUID = "STUDY", study
    try:
        *_, (final, _) = assoc.send_c_get(identifier, StudyRootQueryRetrieveInformationModelGet)
    finally:
        assoc.release()
    assert final.Status == 0x0000 and len(received) == 3
    for ds in received:
        assert ds.file_meta.TransferSyntaxUID == JPEGLSLossless
        original = dcmread(node.catalogue.files[str(ds.SOPInstanceUID)])
        assert (ds.pixel_array == original.pixel_array).all()
