"""Notification destinations in the settings: kinds, rule and pipeline ``notify`` lists, the
router's choice between them, and clear errors for a destination used as the wrong kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicom_node.config import load_settings, record_settings, recorded_settings
from dicom_node.errors import ConfigError
from dicom_node.routing.router import plan_jobs
from dicom_node.send import send_files

DESTINATIONS = {
    "pacs": {"kind": "dicom", "ae_title": "PACS", "host": "127.0.0.1", "port": 104},
    "ris": {"kind": "hl7", "host": "127.0.0.1", "port": 2575, "receiving_application": "RIS"},
    "ehr": {"kind": "fhir", "base_url": "http://127.0.0.1:8080/fhir", "auth_token": "t0ken"},
    "teams": {"kind": "webhook", "url": "http://127.0.0.1:9000/hook", "template": "{{ result.summary }}"},
}
CT = {"Modality": "CT"}


def settings_with(tmp_path: Path, **extra: object):
    return load_settings(data_dir=tmp_path, destinations=DESTINATIONS, **extra)


def test_rule_notify_overrides_the_pipeline_default(tmp_path):
    settings = settings_with(
        tmp_path,
        rules=[
            {"name": "default", "match": CT, "pipeline": "ct-lesion"},
            {"name": "own", "match": CT, "pipeline": "ct-lesion", "notify": ["teams"]},
            {"name": "none", "match": CT, "pipeline": "ct-lesion", "notify": []},
        ],
        pipelines={"ct-lesion": {"notify": ["ris", "ehr"]}},
    )  # fmt: skip
    plan = plan_jobs(settings, "1.2.3", {"1.2.3.4": {"Modality": "CT"}}, lambda name: "gpu")
    notify = {job.rule: (job.params or {}).get("notify", []) for job in plan.jobs}
    assert notify == {"default": ["ris", "ehr"], "own": ["teams"], "none": []}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"rules": [{"name": "r", "match": CT, "pipeline": "p", "notify": ["pacs"]}]}, "destination 'pacs' is dicom"),
        ({"rules": [{"name": "r", "match": CT, "forward": ["ris"]}]}, "destination 'ris' is hl7"),
        ({"rules": [{"name": "r", "match": CT, "forward": ["pacs"], "notify": ["ris"]}]}, "the rule needs a pipeline"),
        ({"rules": [{"name": "r", "match": CT, "pipeline": "p", "notify": ["nowhere"]}]}, "unknown destination 'nowhere'"),
        ({"pipelines": {"p": {"notify": ["pacs"]}}}, "pipelines['p'] field 'notify'"),
        ({"origins": {"CT1": "teams"}}, "destination 'teams' is webhook"),
    ],
)
def test_a_destination_of_the_wrong_kind_is_refused(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        settings_with(tmp_path, **extra)


def test_a_webhook_template_cannot_reach_patient_data_without_phi(tmp_path):
    hook = {"kind": "webhook", "url": "http://127.0.0.1:9/x", "template": "{{ patient.name }}: {{ result.summary }}"}
    with pytest.raises(ConfigError, match="phi: true"):
        load_settings(data_dir=tmp_path, destinations={"teams": hook})
    assert load_settings(data_dir=tmp_path, destinations={"teams": {**hook, "phi": True}}).destinations["teams"].phi
    with pytest.raises(ConfigError, match="does not parse"):
        load_settings(data_dir=tmp_path, destinations={"teams": {**hook, "template": "{{ result.summary"}})
    with pytest.raises(ConfigError, match="unknown variable"):
        load_settings(data_dir=tmp_path, destinations={"teams": {**hook, "template": "{{ study }}"}})


def test_notification_settings_survive_the_settings_record(tmp_path):
    settings = settings_with(tmp_path, rules=[{"name": "r", "match": CT, "pipeline": "p", "notify": ["ris", "teams"]}])
    record_settings(settings)
    again = recorded_settings(tmp_path)
    assert again is not None
    assert again.destinations == settings.destinations and again.rules[0].notify == ["ris", "teams"]


def test_sending_files_to_a_notification_destination_is_a_clear_error(tmp_path):
    settings = settings_with(tmp_path)
    with pytest.raises(ConfigError, match="destination 'ehr' is fhir"):
        send_files(settings, "ehr", [tmp_path / "x.dcm"])
