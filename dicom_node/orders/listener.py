"""The MLLP listener taking orders from the RIS: python-hl7's asyncio MLLP server, run on its own
event loop in a daemon thread of the node process (like the router and the relay).

Every message gets an ACK in original mode (HL7 v2.5.1 §2.9.2): AA once the order is recorded,
AE with the reason in MSA-3 for a message that is not a usable order, AR when the index cannot
take it now (the RIS sends it again). A connection may carry several messages.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import hl7
from hl7.exceptions import ParseException
from hl7.mllp import (
    HL7StreamReader,
    HL7StreamWriter,
    InvalidBlockError,
    start_hl7_server,
)
from sqlalchemy.exc import SQLAlchemyError

from dicom_node.orders.record import OrderError, read_order, record_order
from dicom_node.store.index import Index

__all__ = ["OrderListener"]

log = logging.getLogger(__name__)


class OrderListener:
    """Listens on ``host:port`` (0: a free port, see :attr:`port`) until :meth:`stop`."""

    def __init__(self, index: Index, host: str, port: int, application: str = "DICOM_NODE") -> None:
        self.index = index
        self.host = host
        self.port = port
        self.application = application
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="order-listener", daemon=True)

    def start(self) -> None:
        """Bind (OSError when the port cannot be bound) and serve in the background."""
        self._server = self._loop.run_until_complete(start_hl7_server(self._client, self.host, self.port, encoding="utf-8"))
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._thread.start()
        log.info("order listener (MLLP) on %s:%d", self.host, self.port)

    def stop(self) -> None:
        if self._server is None:
            return
        server = self._server

        async def close() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _client(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            while not reader.at_eof():
                try:
                    message = await reader.readmessage()
                except asyncio.IncompleteReadError:
                    return  # the RIS closed the connection between messages
                except (InvalidBlockError, ParseException, ValueError) as exc:
                    log.warning("order listener: unreadable MLLP block from %s: %s", peer, exc)
                    return
                ack = await asyncio.to_thread(self._handle, message)
                writer.writemessage(ack)
                await writer.drain()
        finally:
            writer.close()

    def _handle(self, message: hl7.Message) -> hl7.Message:
        """Record the order; the ACK to send back."""
        try:
            facts = read_order(message)
            record_order(self.index, facts)
        except OrderError as exc:
            log.warning("order refused (AE): %s", exc)
            return _ack(message, "AE", str(exc), self.application)
        except SQLAlchemyError as exc:
            log.error("order not recorded (AR), the index failed: %s", exc)
            return _ack(message, "AR", "the node cannot record orders now; send it again", self.application)
        return _ack(message, "AA", "", self.application)


def _ack(message: hl7.Message, code: str, text: str, application: str) -> hl7.Message:
    """An ACK of ``message`` with MSA-1 ``code`` and, when given, the reason in MSA-3."""
    ack = message.create_ack(code, application=application)
    if text:
        ack.segment("MSA").append(message.escape(text))
    return ack
