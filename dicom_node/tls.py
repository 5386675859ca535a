"""``ssl.SSLContext`` from settings, for DICOM TLS (PS3.15 B.1/B.9) and the audit syslog (RFC 5425).

One place builds contexts so every TLS endpoint of the node has the same floor: TLS 1.2 at
least unless raised (BCP 195, which PS3.15 B.9 follows), certificates checked against the
configured CAs, and a client certificate demanded where the settings say so.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

__all__ = ["TlsVersion", "client_context", "server_context"]

TlsVersion = Literal["TLSv1.2", "TLSv1.3"]
_VERSIONS = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


class ScpTlsSettings(BaseModel):
    """The SCP's ``tls:`` section (PS3.15 B.1 secure transport connection profile).

    Served on its own ``port`` (2762, the IANA port for DICOM over TLS) beside the plain one,
    or, with ``only``, on the node's ``port`` instead of plain DIMSE (then ``receivers: 1``:
    the dispatcher hands plain TCP connections only). TLS associations are served by pynetdicom
    itself: the C-STORE fast path reads the raw socket and steps aside for them.
    """

    certificate: Path
    private_key: Path
    ca_certificates: Path | None = Field(
        None, description="CAs client certificates are checked against"
    )
    require_client_cert: bool = False
    min_version: TlsVersion = "TLSv1.2"
    ciphers: str | None = Field(
        None, description="OpenSSL cipher string; None: OpenSSL's defaults"
    )
    port: int = Field(2762, ge=0, le=65535)
    only: bool = False

    @model_validator(mode="after")
    def _check(self) -> ScpTlsSettings:
        if self.require_client_cert and self.ca_certificates is None:
            raise ValueError("require_client_cert needs ca_certificates")
        return self

    def context(self) -> ssl.SSLContext:
        return server_context(self.certificate, self.private_key, self.ca_certificates, self.require_client_cert,
                              self.min_version, self.ciphers)  # fmt: skip


class PeerTlsSettings(BaseModel):
    """A destination's ``tls:``: how the node's SCUs (C-STORE, echo) reach it over TLS."""

    ca_certificates: Path | None = Field(None, description="None: the system's CAs")
    certificate: Path | None = Field(
        None, description="our client certificate, where the peer asks for one"
    )
    private_key: Path | None = None
    min_version: TlsVersion = "TLSv1.2"
    ciphers: str | None = None
    server_name: str | None = Field(
        None, description="name its certificate must carry; None: the host"
    )

    @model_validator(mode="after")
    def _check_pair(self) -> PeerTlsSettings:
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("certificate and private_key go together")
        return self

    def tls_args(self, host: str) -> tuple[ssl.SSLContext, str]:
        """pynetdicom's ``associate(tls_args=...)``."""
        context = client_context(
            self.ca_certificates,
            self.certificate,
            self.private_key,
            self.min_version,
            self.ciphers,
        )
        return context, self.server_name or host


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
