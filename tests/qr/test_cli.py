"""``dicom-node query`` and ``dicom-node retrieve`` against a running node."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.store.index import Index
from tests.qr.conftest import NODE_AE


def _config(tmp_path, node) -> str:
    path = tmp_path / "client.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "ae_title": "CLIENT",
                "data_dir": str(tmp_path / "client"),
                "destinations": {"node": {"ae_title": NODE_AE, "host": "127.0.0.1", "port": node.port}},
            }
        )
    )
    return str(path)


def test_query_json(node, tmp_path):
    result = CliRunner().invoke(
        app, ["query", "node", "--config", _config(tmp_path, node), "-k", "PatientName=doe*", "--json"]
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    uids = {ds["0020000D"]["Value"][0] for ds in found}
    cat = node.catalogue.studies
    assert uids == {cat["s1"], cat["s2"], cat["s4"]}


def test_query_table_by_address(node, tmp_path):
    result = CliRunner().invoke(
        app,
        ["query", f"{NODE_AE}@127.0.0.1:{node.port}", "--config", _config(tmp_path, node), "--level", "PATIENT",
         "--model", "patient", "-k", "PatientID=PAT2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "PAT2" in result.output and "1 patient matches" in result.output
    assert "Smith^Anna" in result.output  # a name, not S\m\i\t\h…


def test_retrieve_by_get_stores_and_indexes(node, tmp_path):
    config = _config(tmp_path, node)
    study = node.catalogue.studies["s2"]
    result = CliRunner().invoke(app, ["retrieve", "node", "--study", study, "--get", "--config", config])
    assert result.exit_code == 0, result.output
    assert "3 completed" in result.output
    index = Index(f"sqlite:///{tmp_path / 'client' / 'index.sqlite'}")
    [held] = index.studies()
    assert held.study_uid == study and held.instances == 3


def test_unknown_destination(node, tmp_path):
    result = CliRunner().invoke(app, ["query", "nowhere", "--config", _config(tmp_path, node)])
    assert result.exit_code == 1 and "unknown destination" in result.output
