"""Extra receiver processes (``receivers``): the node's main process accepts and hands each
association to one of them; a started node has every one serving, and one that dies is
replaced without the node refusing anyone."""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path

import pytest
import yaml

from dicom_node.config import load_settings
from dicom_node.errors import NodeError
from dicom_node.node import Node
from dicom_node.store.index import Index
from dicom_node.synthetic import StudySpec, ct_series, write_series
from tests.conftest import dcmtk, require, wait_for


def listening_sockets(port: int) -> int:
    """Sockets listening on ``port`` on IPv4, from /proc/net/tcp."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for f in map(str.split, lines) if f[3] == "0A" and int(f[1].split(":")[1], 16) == port)


def two_receiver_node(tmp_path: Path) -> Node:
    config = tmp_path / "node.yaml"
    settings = {"data_dir": str(tmp_path / "node"), "host": "127.0.0.1", "port": 0, "receivers": 2, "min_free_disk_mb": 0}
    config.write_text(yaml.safe_dump(settings))
    node = Node(load_settings(config), config_path=config, workers=False)
    node.start()
    return node


def echo(port: int) -> int:
    return dcmtk("echoscu", "-ta", "10", "-aec", "DICOM_NODE", "127.0.0.1", str(port), timeout=30).returncode


def test_parallel_associations_over_two_receivers_store_and_index_everything(tmp_path):
    require("storescu")
    files = write_series(ct_series(StudySpec(), shape=(40, 16, 16), lesion_radius=None), tmp_path / "series")
    node = two_receiver_node(tmp_path)
    port = node.port
    try:
        assert listening_sockets(port) == 1, "only the main process listens"
        results = [None] * 4

        def send(k: int) -> None:
            results[k] = dcmtk("storescu", "-aec", "DICOM_NODE", "127.0.0.1", str(port), *map(str, files[k::4]))

        threads = [threading.Thread(target=send, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
        stored = sorted((tmp_path / "node" / "store").rglob("*.dcm"))
        assert len(stored) == len(files)
        index = Index(node.settings.database_url or "")
        try:
            wait_for(lambda: len(index.indexed_paths()) == len(files), "every instance indexed", timeout=10)
        finally:
            index.close()
    finally:
        node.stop()
    assert listening_sockets(port) == 0


def test_a_receiver_that_dies_is_replaced_and_every_association_is_served(tmp_path):
    require("echoscu")
    node = two_receiver_node(tmp_path)
    try:
        for _ in range(4):  # no polling: connections alternate between both processes
            assert echo(node.port) == 0
        child = node.children["receiver-1"][0]
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        for _ in range(4):  # the dispatcher sees the lane close and hands these to receiver-0
            assert echo(node.port) == 0
        wait_for(lambda: node.children["receiver-1"][0] is not child, "receiver-1 restarted", timeout=10)
        assert node.dispatcher is not None
        node.dispatcher.wait_ready(["receiver-1"], timeout_s=60)
        for _ in range(4):
            assert echo(node.port) == 0
    finally:
        node.stop()


@pytest.mark.parametrize("receivers", [1, 2])
def test_a_port_in_use_fails_the_start_with_a_clear_error(tmp_path, receivers):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        settings = load_settings(data_dir=tmp_path / "node", host="127.0.0.1", port=port, receivers=receivers)
        node = Node(settings, workers=False)
        with pytest.raises(NodeError, match=f"cannot listen on 127.0.0.1:{port}: .*in use"):
            node.start()
        node.index.close()
