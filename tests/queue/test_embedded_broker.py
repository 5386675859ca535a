"""The embedded (filesystem) broker under concurrent producers and consumers: every message is
delivered once and whole — kombu's own transport let a consumer read a half-written file."""

from __future__ import annotations

import multiprocessing as mp
import queue
from pathlib import Path

from kombu import Connection

N_PER_PRODUCER = 300


def _connection(folder: Path) -> Connection:
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    options = {
        "data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"), "control_folder": str(folder / "control"),
    }  # fmt: skip
    return Connection("filesystem://", transport="dicom_node.queue.embedded:Transport", transport_options=options)


def _produce(folder: Path, offset: int) -> None:
    with _connection(folder) as conn:
        q = conn.SimpleQueue("send")
        for n in range(offset, offset + N_PER_PRODUCER):
            q.put({"n": n, "padding": "x" * 4096})


def _consume(folder: Path, out: mp.Queue) -> None:
    """Until a stop message (the producers may start late on a busy machine)."""
    with _connection(folder) as conn:
        q = conn.SimpleQueue("send")
        while True:
            message = q.get(timeout=300)
            message.ack()
            if message.payload.get("stop"):
                return
            out.put(message.payload["n"])


def test_concurrent_producers_and_consumers_get_every_message_once(tmp_path: Path):
    ctx = mp.get_context("spawn")  # fork would copy locks held by threads earlier tests left running
    out: mp.Queue = ctx.Queue()
    producers = [ctx.Process(target=_produce, args=(tmp_path, k * N_PER_PRODUCER)) for k in range(2)]
    consumers = [ctx.Process(target=_consume, args=(tmp_path, out)) for _ in range(3)]
    for p in producers + consumers:
        p.start()
    for p in producers:
        p.join(timeout=300)
    with _connection(tmp_path) as conn:  # one stop message per consumer, after every real one
        stop = conn.SimpleQueue("send")
        for _ in consumers:
            stop.put({"stop": True})
    received = []
    while any(p.is_alive() for p in consumers) or not out.empty():
        try:
            received.append(out.get(timeout=0.5))
        except queue.Empty:
            pass
    for p in producers + consumers:
        p.join(timeout=60)
        assert p.exitcode == 0, "a process crashed (a consumer reading a half-written message?)"
    assert sorted(received) == list(range(2 * N_PER_PRODUCER))
