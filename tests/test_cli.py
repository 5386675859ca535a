"""The CLI over a real node: send with progress, studies, complete, rules test, jobs."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.store.index import Index
from dicom_node.synthetic import ct_series, write_series

runner = CliRunner()


def test_send_studies_complete_and_jobs(node_server, tmp_path, monkeypatch):
    monkeypatch.setenv("DICOM_NODE_DATA_DIR", str(node_server.settings.data_dir))
    files = write_series(ct_series(shape=(4, 16, 16), lesion_radius=None), tmp_path / "study")
    sent = runner.invoke(app, ["send", str(tmp_path / "study"), "--to", f"DICOM_NODE@127.0.0.1:{node_server.port}"])
    assert sent.exit_code == 0, sent.output
    assert "sent 4, failed 0" in sent.output
    node_server.writer.flush()

    listed = runner.invoke(app, ["studies", "--json"])
    [study] = json.loads(listed.output)
    assert study["instances"] == len(files) and study["completed_at"] is None

    assert runner.invoke(app, ["complete", study["study_uid"]]).exit_code == 0
    assert Index(node_server.settings.database_url).studies()[0].completed_at is not None
    missing = runner.invoke(app, ["complete", "1.2.3.4"])
    assert missing.exit_code == 1 and "no study" in missing.output

    timeline = runner.invoke(app, ["jobs", "--study", study["study_uid"], "--json"])
    assert [e["event"] for e in json.loads(timeline.output)["timeline"]] == ["received", "complete"]


def test_rules_test_explains_without_running(tmp_path):
    write_series(ct_series(shape=(2, 16, 16), lesion_radius=None), tmp_path / "study")
    config = tmp_path / "c.yaml"
    config.write_text(
        "destinations: {archive: {ae_title: ARCH, host: 127.0.0.1, port: 104}}\n"
        "rules:\n"
        "  - {name: archive-ct, match: {Modality: CT}, forward: [archive]}\n"
        "  - {name: mr-only, match: {Modality: MR}, forward: [archive]}\n"
    )
    result = runner.invoke(app, ["rules", "test", str(tmp_path / "study"), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "archive-ct" in result.output and "mr-only" not in result.output
    assert "would queue forward archive" in result.output


def test_echo_reports_status_and_unreachable_peer(node_server):
    ok = runner.invoke(app, ["echo", f"DICOM_NODE@127.0.0.1:{node_server.port}"])
    assert ok.exit_code == 0 and "status 0x0000" in ok.output
    down = runner.invoke(app, ["echo", "127.0.0.1", "1"])
    assert down.exit_code == 1 and "C-ECHO failed" in down.output
