"""A node with its web face on free loopback ports, holding the Q/R tests' catalogue, and a
dicomweb-client per role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dicomweb_client import DICOMwebClient

from dicom_node.config import Settings, load_settings
from dicom_node.node import Node
from dicom_node.web.auth import create_token
from tests.qr.conftest import NODE_AE, Catalogue, populate
from tests.tools import free_port


@dataclass
class WebNode:
    node: Node
    settings: Settings
    catalogue: Catalogue
    tokens: dict[str, str]  # role → token

    @property
    def url(self) -> str:
        assert self.node.web is not None
        return f"http://127.0.0.1:{self.node.web.port}"

    def client(self, role: str = "viewer") -> DICOMwebClient:
        return DICOMwebClient(f"{self.url}/dicom-web", headers={"Authorization": f"Bearer {self.tokens[role]}"})

    def auth(self, role: str = "viewer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def start_web_node(data_dir: Path, **overrides: object) -> Node:
    settings = load_settings(
        data_dir=data_dir, host="127.0.0.1", port=free_port(), ae_title=NODE_AE, min_free_disk_mb=0, receivers=1,
        http={"enabled": True, "port": 0, **overrides.pop("http", {})}, **overrides,  # type: ignore[dict-item]
    )  # fmt: skip
    node = Node(settings, workers=False)
    node.start()
    return node


@pytest.fixture(scope="module")
def web_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebNode]:
    node = start_web_node(tmp_path_factory.mktemp("web-node"), http={"max_upload_mb": 2})
    try:
        catalogue = populate(node.server)
        tokens = {role: create_token(node.index, f"test-{role}", role) for role in ("viewer", "operator", "admin")}
        yield WebNode(node, node.settings, catalogue, tokens)
    finally:
        node.stop()
