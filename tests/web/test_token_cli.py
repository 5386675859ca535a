"""``dicom-node token create|list|revoke`` on a data folder, and the token working over HTTP;
``serve --http-port`` and a taken HTTP port."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.errors import NodeError
from dicom_node.store.index import Index
from dicom_node.web.auth import authenticate
from tests.web.conftest import start_web_node

runner = CliRunner()


def test_create_list_revoke(tmp_path: Path) -> None:
    folder = ["--data-dir", str(tmp_path)]
    created = runner.invoke(app, ["token", "create", "ris", "--role", "operator", *folder])
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    index = Index(f"sqlite:///{tmp_path / 'index.sqlite'}")
    caller = authenticate(index, token)
    assert caller is not None and caller.name == "ris" and caller.role.name == "OPERATOR"
    listed = runner.invoke(app, ["token", "list", *folder])
    assert listed.exit_code == 0 and "ris" in listed.stdout and "operator" in listed.stdout
    assert token not in listed.stdout
    again = runner.invoke(app, ["token", "create", "ris", *folder])
    assert again.exit_code == 2 and "exists already" in again.output
    bad_role = runner.invoke(app, ["token", "create", "x", "--role", "root", *folder])
    assert bad_role.exit_code == 2 and "unknown role" in bad_role.output
    assert runner.invoke(app, ["token", "revoke", "ris", *folder]).exit_code == 0
    assert authenticate(index, token) is None
    unknown = runner.invoke(app, ["token", "revoke", "nobody", *folder])
    assert unknown.exit_code == 2 and "no token named" in unknown.output
    index.close()


def test_a_taken_http_port_stops_the_node_with_a_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(NodeError, match=r"cannot listen on 127\.0\.0\.1:\d+ \(HTTP\)"):
            start_web_node(tmp_path, http={"port": taken.getsockname()[1]})


def test_the_web_face_stops_with_the_node(tmp_path: Path) -> None:
    node = start_web_node(tmp_path)
    assert node.web is not None
    url = f"http://127.0.0.1:{node.web.port}/healthz"
    assert requests.get(url, timeout=10).status_code == 200
    node.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


def test_serve_takes_an_http_port() -> None:
    shown = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert "--http-port" in shown.stdout
