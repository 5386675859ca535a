"""A RIS stand-in for the tests: hl7apy's MLLP server (a different library from the node's
python-hl7 client framing), run as ``python -m tests.notify.mllp_peer PORT FOLDER``.

Each message it receives is written to ``FOLDER/NNNN.hl7`` as received; its answer is read
from ``FOLDER/mode`` at that moment, so a test can change it between attempts:
``AA``/``AE``/``AR`` (an ACK with that MSA-1; AE/AR carry MSA-3 and an ERR segment whose text
is ``FOLDER/reason``) or ``silent`` (read the message and never answer).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from hl7apy.mllp import AbstractHandler, MLLPServer

_lock = threading.Lock()


def main(port: int, folder: Path) -> None:
    class Handler(AbstractHandler):
        def reply(self) -> str:
            with _lock:
                number = len(list(folder.glob("*.hl7"))) + 1
                (folder / f"{number:04d}.hl7").write_text(self.incoming_message, newline="")
            mode = (folder / "mode").read_text().strip()
            if mode == "silent":
                threading.Event().wait(60)  # hold the connection, answer nothing
                return ""
            control_id = self.incoming_message.split("\r", 1)[0].split("|")[9]  # MSH-10 (the server checked MSH)
            reason = (folder / "reason").read_text().strip() if (folder / "reason").exists() else ""
            segments = [
                f"MSH|^~\\&|RIS|HOSP|DICOM_NODE||20260101120000||ACK^R01^ACK|ACK{number}|P|2.5.1",
                f"MSA|{mode}|{control_id}" + (f"|{reason}" if mode != "AA" else ""),
            ]
            if mode != "AA":
                segments.append(f"ERR|||207^Application internal error^HL70357|E||||{reason}")
            return "\x0b" + "\r".join(segments) + "\r\x1c\x0d"

    server = MLLPServer("127.0.0.1", port, {"ORU^R01^ORU_R01": (Handler,)}, timeout=70)
    (folder / "ready").write_text("1")
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
