"""Sending one HL7 v2 message over MLLP and reading its acknowledgement.

Framing (``<VT>message<FS><CR>``) and reading the ACK are python-hl7's (``hl7.mllp``); this
module adds what a worker needs: a connect and an ACK timeout, and the ACK's verdict.

Original acknowledgement mode (HL7 v2.5.1 §2.9.2): MSA-1 AA accepts, AE (error) and AR
(reject) do not; the enhanced-mode CA/CE/CR are read the same way. A refusal, a timeout, a
closed connection or an ACK for another message are all :class:`~dicom_node.errors.DestinationError`
(transient): the outbox retries with back-off and, once attempts run out, dead-letters the job
with this text — MSA-3 and ERR — on the study's timeline.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import hl7
from hl7.mllp import InvalidBlockError, open_hl7_connection

from dicom_node.errors import DestinationError

__all__ = ["Ack", "send_message"]

log = logging.getLogger(__name__)

_ACCEPTED = {"AA", "CA"}


@dataclass(frozen=True)
class Ack:
    """What the receiver answered: MSA-1 code, MSA-2 control id, MSA-3 text and ERR segments."""

    code: str
    control_id: str
    text: str

    @property
    def accepted(self) -> bool:
        return self.code in _ACCEPTED


def read_ack(message: hl7.Message) -> Ack:
    """The verdict of an ACK message (MSA, plus ERR-3/ERR-8 or the v2.4 ERR-1 when present)."""
    try:
        msa = message.segment("MSA")
    except KeyError as exc:
        raise DestinationError("the answer has no MSA segment: not an acknowledgement") from exc
    def field(segment: hl7.Segment, number: int) -> str:
        return message.unescape(str(segment[number])) if len(segment) > number else ""

    texts = [field(msa, 3)] if field(msa, 3) else []
    try:
        errors = message.segments("ERR")
    except KeyError:
        errors = []
    for err in errors:  # error code, user message, and the v2.4 error code and location
        texts.extend(t for t in (field(err, 3), field(err, 8), field(err, 1)) if t)
    code, control_id = field(msa, 1), field(msa, 2)
    return Ack(code, control_id, "; ".join(texts))


async def _exchange(host: str, port: int, message: str, connect_timeout_s: float, ack_timeout_s: float) -> hl7.Message:
    try:
        reader, writer = await asyncio.wait_for(open_hl7_connection(host, port, encoding="utf-8"), connect_timeout_s)
    except (OSError, TimeoutError) as exc:
        why = f"no connection within {connect_timeout_s:g} s" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
        raise DestinationError(f"cannot connect to {host}:{port}: {why}") from exc
    try:
        writer.writemessage(message)
        await writer.drain()
        return await asyncio.wait_for(reader.readmessage(), ack_timeout_s)
    except TimeoutError as exc:
        raise DestinationError(f"no ACK from {host}:{port} within {ack_timeout_s:g} s") from exc
    except (OSError, asyncio.IncompleteReadError, InvalidBlockError, ValueError) as exc:
        raise DestinationError(f"no usable ACK from {host}:{port}: {type(exc).__name__}: {exc}") from exc
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass  # the peer reset the connection it was closing anyway


def send_message(host: str, port: int, message: str, control_id: str,
                 connect_timeout_s: float = 5.0, ack_timeout_s: float = 10.0) -> Ack:  # fmt: skip
    """Send ``message`` (ER7) and return the peer's accepting ACK; DestinationError otherwise."""
    answer = asyncio.run(_exchange(host, port, message, connect_timeout_s, ack_timeout_s))
    ack = read_ack(answer)
    if ack.control_id != control_id:
        raise DestinationError(f"ACK for message {ack.control_id!r}, expected {control_id!r}")
    if not ack.accepted:
        raise DestinationError(f"MSA {ack.code or '(none)'}: {ack.text or 'no reason given'}")
    return ack
