"""DICOM TLS (PS3.15 B.1/B.9): the SCP's TLS port, refusals of clients it must not accept, and the
node's C-STORE SCU to a TLS destination. Peers are pynetdicom AEs over Python's ssl (OpenSSL)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage, Verification

from dicom_node.config import DicomDestination, Settings, load_settings
from dicom_node.receive.scp import NodeServer
from dicom_node.send import send_files
from dicom_node.store.index import Index
from dicom_node.synthetic import StudySpec, ct_series
from dicom_node.tls import client_context, server_context
from tests.security.certs import Pki, make_pki
from tests.tools import free_port, wait_for


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


def _settings(tmp_path: Path, pki: Pki, **tls: Any) -> Settings:
    return load_settings(
        data_dir=tmp_path / "node", port=0, host="127.0.0.1", min_free_disk_mb=0, ae_title="TLSNODE", receivers=1,
        association_timeout_s=2,
        tls={"certificate": str(pki.server_cert), "private_key": str(pki.server_key), "ca_certificates": str(pki.ca),
             "port": 0, **tls},
    )  # fmt: skip


@pytest.fixture
def node(tmp_path: Path, pki: Pki) -> Iterator[NodeServer]:
    server = NodeServer(_settings(tmp_path, pki, require_client_cert=True), qr=False)
    server.start()
    yield server
    server.stop()


def _client(pki: Pki, cert: bool = True, **versions: ssl.TLSVersion) -> ssl.SSLContext:
    context = client_context(
        pki.ca, pki.client_cert if cert else None, pki.client_key if cert else None
    )
    for key, value in versions.items():
        setattr(context, key, value)
    return context


def _associate(port: int, context: ssl.SSLContext, *contexts: str) -> Any:
    ae = AE(ae_title="TLS_SCU")
    ae.acse_timeout = ae.network_timeout = 5
    for uid in contexts or (Verification,):
        ae.add_requested_context(uid)
    return ae.associate(
        "127.0.0.1", port, ae_title="TLSNODE", tls_args=(context, "localhost")
    )


def test_a_client_with_a_certificate_stores_over_tls(
    tmp_path: Path, pki: Pki, node: NodeServer
) -> None:
    study = StudySpec()
    ct = ct_series(study, shape=(2, 16, 16), lesion_radius=None)
    assoc = _associate(node.tls_port, _client(pki), CTImageStorage, Verification)
    assert assoc.is_established
    assert int(assoc.send_c_echo().Status) == 0
    assert [int(assoc.send_c_store(ds).Status) for ds in ct] == [0, 0]
    assoc.release()
    index = Index(node.settings.database_url or "")
    wait_for(
        lambda: len(index.instance_paths(study.study_uid)) == 2,
        "both instances stored and indexed",
    )
    index.close()
    plain = AE(ae_title="PLAIN")
    plain.add_requested_context(Verification)
    assoc = plain.associate(
        "127.0.0.1", node.port, ae_title="TLSNODE"
    )  # the plain port still serves
    assert assoc.is_established
    assoc.release()


def test_a_client_without_a_certificate_is_refused_when_one_is_required(
    pki: Pki, node: NodeServer
) -> None:
    assoc = _associate(node.tls_port, _client(pki, cert=False))
    assert not assoc.is_established


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_tls_below_1_2_is_refused(
    pki: Pki, node: NodeServer, version: ssl.TLSVersion
) -> None:
    context = _client(pki)
    context.set_ciphers("ALL:@SECLEVEL=0")  # let our side offer the old version at all
    context.minimum_version = context.maximum_version = version
    with socket.create_connection(("127.0.0.1", node.tls_port), timeout=5) as raw, pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="localhost")


def test_min_version_1_3_refuses_a_1_2_client(tmp_path: Path, pki: Pki) -> None:
    server = NodeServer(_settings(tmp_path, pki, min_version="TLSv1.3"), qr=False)
    server.start()
    try:
        assert not _associate(
            server.tls_port, _client(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
        ).is_established
        assert _associate(server.tls_port, _client(pki)).is_established
    finally:
        server.stop()


def test_a_silent_connection_does_not_hold_the_tls_listener(
    pki: Pki, node: NodeServer
) -> None:
    with socket.create_connection(
        ("127.0.0.1", node.tls_port)
    ):  # never sends a ClientHello
        assoc = _associate(node.tls_port, _client(pki))
        assert assoc.is_established
        assoc.release()


def test_tls_only_serves_the_main_port_with_tls(tmp_path: Path, pki: Pki) -> None:
    server = NodeServer(_settings(tmp_path, pki, only=True), qr=False)
    server.start()
    try:
        assert _associate(server.port, _client(pki)).is_established
        plain = AE(ae_title="PLAIN")
        plain.acse_timeout = plain.network_timeout = 3
        plain.add_requested_context(Verification)
        assert not plain.associate(
            "127.0.0.1", server.port, ae_title="TLSNODE"
        ).is_established
    finally:
        server.stop()


def test_the_node_sends_to_a_tls_destination(tmp_path: Path, pki: Pki) -> None:
    received: list[str] = []

    def on_store(event: Any) -> int:
        received.append(str(event.request.AffectedSOPInstanceUID))
        return 0

    scp = AE(ae_title="TLS_PACS")
    scp.add_supported_context(CTImageStorage)
    port = free_port()
    context = server_context(
        pki.server_cert, pki.server_key, pki.ca, require_client_cert=True
    )
    server = scp.start_server(("127.0.0.1", port), block=False, ssl_context=context,
                              evt_handlers=[(evt.EVT_C_STORE, on_store)])  # fmt: skip
    try:
        folder = tmp_path / "out"
        folder.mkdir()
        paths = []
        for n, ds in enumerate(ct_series(shape=(2, 16, 16), lesion_radius=None)):
            ds.save_as(folder / f"{n}.dcm", enforce_file_format=True)
            paths.append(folder / f"{n}.dcm")
        tls = {"ca_certificates": str(pki.ca), "certificate": str(pki.client_cert), "private_key": str(pki.client_key),
               "server_name": "localhost"}  # fmt: skip
        settings = load_settings(
            data_dir=tmp_path / "node",
            destinations={
                "pacs": {
                    "ae_title": "TLS_PACS",
                    "host": "127.0.0.1",
                    "port": port,
                    "tls": tls,
                }
            },
        )
        report = send_files(settings, "pacs", paths)
        assert report.ok and len(received) == 2
        untrusting = DicomDestination(
            ae_title="TLS_PACS",
            host="127.0.0.1",
            port=port,
            tls={"server_name": "localhost"},
        )
        from dicom_node.errors import DestinationError
        from dicom_node.send.dimse import echo

        with pytest.raises(
            DestinationError
        ):  # the system CAs did not sign the test server's certificate
            echo("NODE", untrusting)
    finally:
        server.shutdown()
