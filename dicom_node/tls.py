"""``ssl.SSLContext`` from settings, for DICOM TLS (PS3.15 B.1/B.9) and the audit syslog (RFC 5425).

One place builds contexts so every TLS endpoint of the node has the same floor: TLS 1.2 at
least unless raised (BCP 195, which PS3.15 B.9 follows), certificates checked against the
configured CAs, and a client certificate demanded where the settings say so.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

__all__ = ["TlsVersion", "client_context", "server_context"]

TlsVersion = Literal["TLSv1.2", "TLSv1.3"]
_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def _apply(
    context: ssl.SSLContext, min_version: TlsVersion, ciphers: str | None
) -> ssl.SSLContext:
    context.minimum_version = _VERSIONS[min_version]
    if ciphers:
        context.set_ciphers(
            ciphers
        )  # ssl.SSLError names an unknown cipher string at start-up
    return context


def server_context(
    certificate: Path,
    private_key: Path,
    ca_certificates: Path | None = None,
    require_client_cert: bool = False,
    min_version: TlsVersion = "TLSv1.2",
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A server context; with ``require_client_cert`` a peer without a certificate our CAs
    signed fails the handshake (PS3.15 B.1: the node authenticates the peer node)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, private_key)
    if ca_certificates is not None:
        context.load_verify_locations(ca_certificates)
    if require_client_cert:
        if ca_certificates is None:
            raise ValueError(
                "require_client_cert needs ca_certificates to check client certificates against"
            )
        context.verify_mode = ssl.CERT_REQUIRED
    return _apply(context, min_version, ciphers)


def client_context(
    ca_certificates: Path | None = None,
    certificate: Path | None = None,
    private_key: Path | None = None,
    min_version: TlsVersion = "TLSv1.2",
    ciphers: str | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client context checking the server against ``ca_certificates`` (the system's when None)."""
    context = ssl.create_default_context(
        cafile=str(ca_certificates) if ca_certificates else None
    )
    context.check_hostname = check_hostname
    if certificate is not None and private_key is not None:
        context.load_cert_chain(certificate, private_key)
    return _apply(context, min_version, ciphers)
