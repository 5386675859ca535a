"""Uvicorn in serve's own process, on a thread: the web face shares the node's index and
C-STORE handler instead of being one more process to supervise.

The socket is bound here, before uvicorn starts, so that a port in use is an OSError at
:meth:`WebServer.start` (serve says "could not start") rather than uvicorn's ``sys.exit`` on
a thread.
"""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn
from fastapi import FastAPI

from dicom_node.errors import NodeError

__all__ = ["WebServer"]

log = logging.getLogger(__name__)


class WebServer:
    """Serve ``app`` on ``host:port`` (0: any free port) until :meth:`stop`."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._socket is None:
            raise NodeError("web server not started")
        return int(self._socket.getsockname()[1])

    def start(self, timeout_s: float = 10.0) -> None:
        """Bind and serve; return once uvicorn answers. Raises OSError when the address
        cannot be bound, NodeError when uvicorn does not come up."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="http", daemon=True)
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout_s / 0.05)):
            if self._server.started or not self._thread.is_alive():
                break
            deadline.wait(0.05)
        if not self._server.started:
            self.stop()
            raise NodeError(f"the web server on {self.host}:{self.requested_port} did not start")
        log.info("web face on http://%s:%d (DICOMweb at /dicom-web)", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
