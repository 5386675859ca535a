"""The CLI over a real node: send with progress, studies, complete, rules test, jobs; how a
command finds the node's settings, wherever its options are; tables that don't lie."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from pydicom import Dataset
from rich.console import Console
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.cli.jobs import jobs_table, pipelines, pipelines_table
from dicom_node.cli.qr import cell_text
from dicom_node.config import load_settings, record_settings
from dicom_node.store.index import Index
from dicom_node.store.models import Job
from dicom_node.synthetic import ct_series, write_series

runner = CliRunner()
STUDY = "1.2.826.0.1.3680043.8.498.42788466310492144031084819832762251641"


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


def _node_config(tmp_path: Path) -> Path:
    """A node's config as make run's: data in a folder of its own, CT routed."""
    config = tmp_path / "node.yaml"
    config.write_text(
        f"ae_title: MY_NODE\ndata_dir: {tmp_path / 'node'}\n"
        "destinations: {archive: {ae_title: ARCH, host: 127.0.0.1, port: 104}}\n"
        "rules: [{name: archive-ct, match: {Modality: CT}, forward: [archive]}]\n"
    )
    return config


def _dead_job(settings) -> int:  # type: ignore[no-untyped-def]
    index = Index(settings.database_url)
    with index.sessions.begin() as session:
        job = Job(kind="forward", queue="send", study_uid=STUDY, destination="archive", state="dead", attempts=5, error="refused")
        session.add(job)
        session.flush()
        return job.id


def test_commands_use_the_settings_serve_recorded(tmp_path, monkeypatch):
    """make run = serve --config deploy/demo.yaml, data in ./var: later commands in that folder
    (or given --data-dir elsewhere) use its settings without --config."""
    recorded = load_settings(_node_config(tmp_path), data_dir=tmp_path / "var", port=4242)
    record_settings(recorded)  # as serve does
    write_series(ct_series(shape=(2, 16, 16), lesion_radius=None), tmp_path / "study")
    monkeypatch.chdir(tmp_path)

    rules = runner.invoke(app, ["rules", "test", "study"])
    assert rules.exit_code == 0, rules.output
    assert "archive-ct" in rules.output and "would queue forward archive" in rules.output
    shown = runner.invoke(app, ["config", "show"])
    assert '"ae_title": "MY_NODE"' in shown.output and '"port": 4242' in shown.output
    assert "recorded by serve" in shown.output

    monkeypatch.chdir(tmp_path / "study")
    elsewhere = runner.invoke(app, ["--data-dir", str(tmp_path / "var"), "config", "show"])
    assert '"port": 4242' in elsewhere.output
    assert not (tmp_path / "study" / "var").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--config", "{c}", "jobs", "retry", "{id}"],
        ["jobs", "--config", "{c}", "retry", "{id}"],
        ["jobs", "retry", "{id}", "--config", "{c}"],
        ["--config", "{c}", "jobs", "retry", "{id}", "--config", "{c}"],
    ],
)
def test_config_means_the_same_before_and_after_the_sub_command(tmp_path, monkeypatch, args):
    config = _node_config(tmp_path)
    job_id = _dead_job(load_settings(config))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, [a.format(c=config, id=job_id) for a in args])
    assert result.exit_code == 0, result.output
    assert f"job {job_id} queued again" in result.output
    assert not (tmp_path / "var").exists()  # no stray index beside the node's


def test_options_that_disagree_or_point_nowhere_are_errors(tmp_path, monkeypatch):
    config = _node_config(tmp_path)
    (tmp_path / "other.yaml").write_text("ae_title: OTHER\n")
    monkeypatch.chdir(tmp_path)
    twice = runner.invoke(app, ["--config", str(config), "jobs", "retry", "1", "--config", "other.yaml"])
    assert twice.exit_code == 2 and "given twice" in twice.output
    missing = runner.invoke(app, ["studies", "--config", "nowhere.yaml"])
    assert missing.exit_code == 2 and "nowhere.yaml" in missing.output
    nothing_here = runner.invoke(app, ["jobs"])
    assert nothing_here.exit_code == 1 and "no node here" in nothing_here.output
    assert not (tmp_path / "var").exists()


def test_jobs_table_shows_uid_start_on_a_terminal_and_everything_otherwise(tmp_path):
    config = _node_config(tmp_path)
    settings = load_settings(config)
    _dead_job(settings)
    with Index(settings.database_url).sessions() as session:
        jobs = session.query(Job).all()
    terminal = Console(width=80, force_terminal=True, color_system=None)
    with terminal.capture() as shown:
        terminal.print(jobs_table(jobs, cut=True))
    text = shown.get()
    [uid_start] = [word for word in text.split() if word.startswith("1.2.")]
    assert uid_start.endswith("…") and STUDY.startswith(uid_start[:-1]) and len(uid_start) > 10
    assert max(map(len, text.splitlines())) <= 80

    piped = runner.invoke(app, ["jobs", "--config", str(config)])  # not a terminal: whole UIDs
    assert piped.exit_code == 0, piped.output
    assert STUDY in piped.output
    created = jobs[0].created_at.replace(tzinfo=dt.UTC).astimezone()  # stored in UTC, shown as the logs are
    assert re.search(rf"{created:%Y-%m-%d %H:%M:%S}(?![.\d])", piped.output), "created, to the second"
    every = json.loads(runner.invoke(app, ["jobs", "--json", "--config", str(config)]).output)
    assert every["jobs"][0]["study_uid"] == STUDY and every["jobs"][0]["error"] == "refused"


def test_query_cells_show_names_as_names():
    ds = Dataset()
    ds.PatientName = "DOE^JOHN"
    ds.ModalitiesInStudy = ["CT", "SEG"]
    assert cell_text(ds.PatientName) == "DOE^JOHN"
    assert cell_text(ds.ModalitiesInStudy) == "CT\\SEG"


def test_pipelines_fit_80_columns():
    terminal = Console(width=80, force_terminal=True, color_system=None)
    with terminal.capture() as shown:
        terminal.print(pipelines_table(pipelines(load_settings()), cut=True))
    lines = shown.get().splitlines()
    assert max(map(len, lines)) <= 80
    for name in ("ct_seg", "genomics", "prediction", "xray_cls"):  # names whole, never wrapped
        assert any(line.split() and line.split()[0] == name for line in lines), name


def test_a_process_of_serve_runs_on_its_record_or_not_at_all(tmp_path):
    result = runner.invoke(app, ["worker", "--from-serve", "--queues", "send", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "no settings recorded" in result.output


def test_pipelines_as_json_name_every_model_in_full(tmp_path):
    listed = json.loads(runner.invoke(app, ["pipelines", "--json", "--data-dir", str(tmp_path)]).output)
    by_name = {p["name"]: p for p in listed}
    assert by_name["ct_seg"]["queue"] == "gpu" and by_name["ct_seg"]["model"].endswith("bundle (demo)")
    assert Path(by_name["drug"]["model"]).is_absolute()
