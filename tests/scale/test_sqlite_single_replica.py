"""SQLite serves one replica: a second serve on the same SQLite index is refused with a clear
message, and may start once the first has stopped (issue 18 item 1)."""

from __future__ import annotations

import pytest

from dicom_node.config import load_settings
from dicom_node.errors import NodeError
from dicom_node.node import Node


def node(tmp_path) -> Node:
    settings = load_settings(data_dir=tmp_path / "node", host="127.0.0.1", port=0, receivers=1, min_free_disk_mb=0)
    return Node(settings, workers=False)


def test_a_second_serve_on_one_sqlite_index_is_refused_until_the_first_stops(tmp_path):
    first, second = node(tmp_path), node(tmp_path)
    first.start()
    try:
        with pytest.raises(NodeError, match=r"another serve \(pid \d+\) runs on the SQLite index .*index\.sqlite: SQLite serves one replica"):
            second.start()
    finally:
        first.stop()
    second.start()  # the first one's lock went with it
    second.stop()
