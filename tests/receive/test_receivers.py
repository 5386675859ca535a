"""Extra receiver processes sharing the SCP port (``receivers``): a started node has every one
of them listening, so the first associations already meet all of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from dicom_node.config import load_settings
from dicom_node.errors import NodeError
from dicom_node.node import Node, _await_ready
from tests.conftest import dcmtk, require


def listening_sockets(port: int) -> int:
    """Sockets listening on ``port`` on IPv4: /proc/net/tcp lists each SO_REUSEPORT socket."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for f in map(str.split, lines) if f[3] == "0A" and int(f[1].split(":")[1], 16) == port)


def test_a_started_node_with_two_receivers_answers_c_echo_at_once(tmp_path):
    require("echoscu")
    config = tmp_path / "node.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "node"), "host": "127.0.0.1", "port": 0, "receivers": 2}))
    node = Node(load_settings(config), config_path=config, workers=False)
    node.start()
    port = node.port
    try:
        assert listening_sockets(port) == 2, "the extra receiver is not listening yet"
        # No polling: the kernel spreads these over both processes, and each must answer.
        for _ in range(8):
            result = dcmtk("echoscu", "-ta", "10", "-aec", "DICOM_NODE", "127.0.0.1", str(port), timeout=30)
            assert result.returncode == 0, result.stderr
    finally:
        node.stop()
    assert listening_sockets(port) == 0


def test_a_receiver_that_exits_before_listening_fails_the_start():
    read_fd, write_fd = os.pipe()
    os.close(write_fd)  # as when the child dies: EOF without the ready byte
    with pytest.raises(NodeError, match="receiver-1 exited before it was listening"):
        _await_ready({"receiver-1": read_fd}, timeout_s=10)


def test_a_receiver_that_never_listens_fails_the_start_in_time():
    read_fd, write_fd = os.pipe()
    try:
        with pytest.raises(NodeError, match="receiver-1 not listening after"):
            _await_ready({"receiver-1": read_fd}, timeout_s=0.1)
    finally:
        os.close(write_fd)
