"""What every benchmark that talks DICOM on loopback needs: the DCMTK environment and a free port."""

from __future__ import annotations

import os
import socket

__all__ = ["ENV", "free_port"]

# Without TCP_NODELAY, Nagle's algorithm holds back DCMTK's small writes and dominates every figure.
ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
