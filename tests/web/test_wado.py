"""WADO-RS against a running node with dicomweb-client: studies, series and instances as
stored, transcoded on request, metadata, frames and rendered images; refusals."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from tests.web.conftest import WebNode


def stored(web: WebNode, sop_uid: str) -> Path:
    return web.catalogue.files[sop_uid]


def test_a_study_comes_back_as_stored(web_node: WebNode) -> None:
    study = web_node.catalogue.studies["s2"]
    datasets = web_node.client().retrieve_study(study, media_types=(("application/dicom", "*"),))
    assert {str(ds.SOPInstanceUID) for ds in datasets} == set(web_node.catalogue.instances["s2"])
    for ds in datasets:
        original = dcmread(stored(web_node, str(ds.SOPInstanceUID)))
        assert ds.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert ds.PixelData == original.PixelData


def test_transfer_syntax_star_sends_the_stored_bytes(web_node: WebNode) -> None:
    study = web_node.catalogue.studies["s1"]
    sop = web_node.catalogue.instances["s1"][0]
    series = web_node.catalogue.series["s1"][0]
    headers = {**web_node.auth(), "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    response = requests.get(f"{web_node.url}/dicom-web/studies/{study}/series/{series}/instances/{sop}", headers=headers, timeout=10)
    assert response.status_code == 200
    assert stored(web_node, sop).read_bytes() in response.content


def test_series_and_instance_retrieval(web_node: WebNode) -> None:
    client = web_node.client()
    study = web_node.catalogue.studies["s2"]
    series = web_node.catalogue.series["s2"][0]
    in_series = client.retrieve_series(study, series)
    assert {str(ds.SeriesInstanceUID) for ds in in_series} == {series}
    assert len(in_series) == 2  # the mr2 series
    sop = str(in_series[0].SOPInstanceUID)
    assert str(client.retrieve_instance(study, series, sop).SOPInstanceUID) == sop


def test_an_instance_stored_compressed_is_decompressed_when_asked(web_node: WebNode, tmp_path: Path) -> None:
    """Stored RLE Lossless; asked for Explicit VR Little Endian, it arrives decoded, same
    pixels, same SOP Instance UID; asked for * (dicomweb-client's default) it arrives as stored."""
    source = dcmread(stored(web_node, web_node.catalogue.instances["s1"][0]))
    source.SOPInstanceUID = source.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.7001"
    source.compress(RLELossless, generate_instance_uid=False)
    path = tmp_path / "rle.dcm"
    source.save_as(path, enforce_file_format=True)
    result = web_node.client("operator").store_instances([dcmread(path)])
    assert "FailedSOPSequence" not in result
    client = web_node.client()
    ds = client.retrieve_instance(
        source.StudyInstanceUID, source.SeriesInstanceUID, source.SOPInstanceUID,
        media_types=(("application/dicom", ExplicitVRLittleEndian),),
    )  # fmt: skip
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPInstanceUID == source.SOPInstanceUID
    assert np.array_equal(ds.pixel_array, source.pixel_array)
    raw = client.retrieve_instance(source.StudyInstanceUID, source.SeriesInstanceUID, source.SOPInstanceUID)
    assert raw.file_meta.TransferSyntaxUID == RLELossless


def test_a_syntax_we_cannot_produce_is_406(web_node: WebNode) -> None:
    study = web_node.catalogue.studies["s1"]
    headers = {**web_node.auth(), "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50'}
    response = requests.get(f"{web_node.url}/dicom-web/studies/{study}", headers=headers, timeout=10)
    assert response.status_code == 406
    only_json = {**web_node.auth(), "Accept": "application/json"}
    assert requests.get(f"{web_node.url}/dicom-web/studies/{study}", headers=only_json, timeout=10).status_code == 406


def without_bulk(item: dict) -> Dataset:
    """The DICOM JSON as a Dataset, its BulkDataURIs left out (they are fetched separately)."""
    return Dataset.from_json({tag: value for tag, value in item.items() if "BulkDataURI" not in value})


def test_metadata_at_every_level(web_node: WebNode) -> None:
    client = web_node.client()
    study = web_node.catalogue.studies["s2"]
    series = web_node.catalogue.series["s2"][0]
    everything = [without_bulk(m) for m in client.retrieve_study_metadata(study)]
    assert {str(ds.SOPInstanceUID) for ds in everything} == set(web_node.catalogue.instances["s2"])
    in_series = client.retrieve_series_metadata(study, series)
    assert len(in_series) == 2
    sop = without_bulk(in_series[0]).SOPInstanceUID
    item = client.retrieve_instance_metadata(study, series, sop)
    one = without_bulk(item)
    original = dcmread(stored(web_node, sop))
    assert one.PatientID == original.PatientID and one.Rows == original.Rows
    uri = item["7FE00010"]["BulkDataURI"]
    assert uri.endswith(f"/studies/{study}/series/{series}/instances/{sop}/bulk/7FE00010")
    path = uri.partition("/dicom-web")[2]  # dicomweb-client's Host header lacks the port: use our own
    assert web_node.client().retrieve_bulkdata(f"{web_node.url}/dicom-web{path}") == [original.PixelData]


def test_bulk_data_other_than_pixel_data_is_404(web_node: WebNode) -> None:
    study, series, sop = web_node.catalogue.studies["s1"], web_node.catalogue.series["s1"][0], web_node.catalogue.instances["s1"][0]
    url = f"{web_node.url}/dicom-web/studies/{study}/series/{series}/instances/{sop}/bulk/00100010"
    assert requests.get(url, headers=web_node.auth(), timeout=10).status_code == 404


def test_frames_are_the_decoded_pixels(web_node: WebNode) -> None:
    study = web_node.catalogue.studies["s1"]
    series = web_node.catalogue.series["s1"][0]
    sop = web_node.catalogue.instances["s1"][1]
    original = dcmread(stored(web_node, sop))
    (frame,) = web_node.client().retrieve_instance_frames(study, series, sop, frame_numbers=[1])
    assert frame == original.pixel_array.astype("<i2" if original.PixelRepresentation else "<u2").tobytes()


def test_a_frame_the_instance_lacks_is_404(web_node: WebNode) -> None:
    study, series, sop = web_node.catalogue.studies["s1"], web_node.catalogue.series["s1"][0], web_node.catalogue.instances["s1"][0]
    base = f"{web_node.url}/dicom-web/studies/{study}/series/{series}/instances/{sop}/frames"
    assert requests.get(f"{base}/2", headers=web_node.auth(), timeout=10).status_code == 404
    assert requests.get(f"{base}/0", headers=web_node.auth(), timeout=10).status_code == 400
    assert requests.get(f"{base}/one", headers=web_node.auth(), timeout=10).status_code == 400


def test_rendered_png_applies_the_window(web_node: WebNode) -> None:
    study, series, sop = web_node.catalogue.studies["s1"], web_node.catalogue.series["s1"][0], web_node.catalogue.instances["s1"][1]
    original = dcmread(stored(web_node, sop))
    url = f"{web_node.url}/dicom-web/studies/{study}/series/{series}/instances/{sop}/rendered"
    response = requests.get(url, headers={**web_node.auth(), "Accept": "image/png"}, timeout=10)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    assert image.shape == (original.Rows, original.Columns)
    hu = original.pixel_array * float(original.RescaleSlope) + float(original.RescaleIntercept)
    # A window from -2000 to 0 HU: everything at or above 0 HU is white, air is black.
    narrow = requests.get(url, params={"window": "-1000,2000,linear"}, headers=web_node.auth(), timeout=10)
    grey = np.asarray(Image.open(io.BytesIO(narrow.content)))
    assert (grey[hu >= 0] == 255).all()
    assert (grey[hu <= -2000] == 0).all()
    via_client = web_node.client().retrieve_instance_rendered(study, series, sop, media_types=("image/png",))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(via_client))), image)


@pytest.mark.parametrize("suffix", ["", "/metadata", "/series/1.2.3", "/series/1.2.3/instances/1.2.3.4"])
def test_an_unknown_uid_is_404(web_node: WebNode, suffix: str) -> None:
    response = requests.get(f"{web_node.url}/dicom-web/studies/1.2.3{suffix}", headers=web_node.auth(), timeout=10)
    assert response.status_code == 404
    assert "no instances" in response.json()["detail"]


def test_without_a_transfer_syntax_explicit_little_endian_is_sent(web_node: WebNode, tmp_path: Path) -> None:
    """PS3.18 8.7.3.5: application/dicom without a transfer-syntax parameter means Explicit VR
    Little Endian; an instance stored Implicit VR Little Endian is re-encoded for it."""
    source = dcmread(stored(web_node, web_node.catalogue.instances["s1"][2]))
    source.SOPInstanceUID = source.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.7002"
    source.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    path = tmp_path / "implicit.dcm"
    source.save_as(path, enforce_file_format=True, implicit_vr=True)
    web_node.client("operator").store_instances([dcmread(path)])
    url = f"{web_node.url}/dicom-web/studies/{source.StudyInstanceUID}/series/{source.SeriesInstanceUID}/instances/{source.SOPInstanceUID}"
    headers = {**web_node.auth(), "Accept": 'multipart/related; type="application/dicom"'}
    response = requests.get(url, headers=headers, timeout=10)
    assert response.status_code == 200
    body = response.content
    ds = dcmread(io.BytesIO(body[body.index(b"\r\n\r\n") + 4 :]))
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.PixelData == source.PixelData


def test_pixels_that_cannot_be_decoded_are_refused_not_a_500(web_node: WebNode, caplog: pytest.LogCaptureFixture) -> None:
    """An instance whose compressed pixel data is corrupt passes the C-STORE checks (they do
    not decode pixels); rendering it or its frames is refused with a reason."""
    source = dcmread(stored(web_node, web_node.catalogue.instances["s1"][0]))
    source.SOPInstanceUID = source.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.7003"
    source.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    source.BitsAllocated = source.BitsStored = 8
    source.HighBit = 7
    source.PixelRepresentation = 0
    source.PixelData = encapsulate([b"\xff\xd8 not really a JPEG \xff\xd9 "])
    source["PixelData"].VR = "OB"
    source["PixelData"].is_undefined_length = True
    buffer = io.BytesIO()
    source.save_as(buffer, enforce_file_format=True)
    assert web_node.client("operator").store_instances([dcmread(io.BytesIO(buffer.getvalue()))]).get("FailedSOPSequence") is None
    base = (
        f"{web_node.url}/dicom-web/studies/{source.StudyInstanceUID}/series/{source.SeriesInstanceUID}"
        f"/instances/{source.SOPInstanceUID}"
    )
    with caplog.at_level(logging.WARNING):
        rendered = requests.get(f"{base}/rendered", headers=web_node.auth(), timeout=10)
        frames = requests.get(f"{base}/frames/1", headers=web_node.auth(), timeout=10)
    assert rendered.status_code == frames.status_code == 422
    assert "cannot be decoded" in rendered.json()["detail"] and "cannot be decoded" in frames.json()["detail"]
    assert "422 GET" in caplog.text
