"""A throw-away CA, server and client certificates for TLS tests, made with the openssl CLI."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pki", "make_pki"]


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(
        ["openssl", *map(str, args)], check=True, capture_output=True, timeout=60
    )


def _issue(folder: Path, stem: str, cn: str) -> tuple[Path, Path]:
    key, csr, cert, ext = (
        folder / f"{stem}{s}" for s in (".key", ".csr", ".pem", ".ext")
    )
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={cn}")  # fmt: skip
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", csr, "-CA", folder / "ca.pem", "-CAkey", folder / "ca.key",
             "-CAcreateserial", "-days", "1", "-out", cert, "-extfile", ext)  # fmt: skip
    return cert, key


def make_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
             "-keyout", folder / "ca.key", "-out", folder / "ca.pem", "-subj", "/CN=dicom-node test CA")  # fmt: skip
    server = _issue(folder, "server", "localhost")
    client = _issue(folder, "client", "TEST_SCU")
    return Pki(folder / "ca.pem", server[0], server[1], client[0], client[1])
