"""Settings: file < environment < flags; the shipped example config is valid."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.config import load_settings, record_settings, recorded_settings
from dicom_node.errors import ConfigError
from dicom_node.routing.rules import Rule

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy" / "example-config.yaml"


def test_example_config_is_valid():
    settings = load_settings(EXAMPLE)
    assert [r.name for r in settings.rules][:2] == ["drop-localizers", "ct-chest-lesions"]
    assert settings.origin_destination("CT_SCANNER_1") == "pacs"
    assert settings.origin_destination("ARCHIVE") == "archive"


def test_precedence_file_then_environment_then_flags(tmp_path, monkeypatch):
    config = tmp_path / "c.yaml"
    config.write_text("port: 5000\nae_title: FROM_FILE\ncompletion: {quiet_period_s: 3}\n")
    assert load_settings(config).port == 5000
    monkeypatch.setenv("DICOM_NODE_PORT", "6000")
    monkeypatch.setenv("DICOM_NODE_COMPLETION__QUIET_PERIOD_S", "2")
    settings = load_settings(config)
    assert (settings.port, settings.ae_title, settings.completion.quiet_period_s) == (6000, "FROM_FILE", 2)
    assert load_settings(config, port=7000).port == 7000


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"ae_title": "BACK\\SLASH"}, "ae_title"),
        ({"port": 70000}, "port"),
        ({"allowed_peers": [{"ae_title": ""}]}, "allowed_peers.0.ae_title"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"origins": {"CT1": "nowhere"}}, "unknown destination 'nowhere'"),
    ],
)
def test_invalid_settings_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match="invalid configuration") as err:
        load_settings(**overrides)
    assert message in str(err.value)


def test_config_show_prints_the_effective_settings(tmp_path):
    result = CliRunner().invoke(app, ["config", "show", "--config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert '"ae_title": "DICOM_NODE"' in result.output and '"quiet_period_s": 10.0' in result.output


def test_recorded_settings_load_back_the_same(tmp_path):
    settings = load_settings(EXAMPLE, data_dir=tmp_path / "node", ae_title="FLAGGED")
    path = record_settings(settings, config_file=EXAMPLE)
    assert path == settings.data_dir / "node-settings.json"
    assert path.stat().st_mode & 0o077 == 0  # database and broker URLs are kept as given: owner only
    assert recorded_settings(settings.data_dir) == settings
    assert recorded_settings(settings.data_dir, port=4242).port == 4242
    assert recorded_settings(tmp_path / "elsewhere") is None


def test_a_dumped_rule_matches_as_written(tmp_path):
    rules = load_settings(EXAMPLE).rules
    reloaded = [Rule.model_validate(r.model_dump(mode="json", by_alias=True)) for r in rules]
    ct = {"Modality": "CT", "BodyPartExamined": "CHEST", "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"]}
    localizer = {**ct, "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}
    for attrs in (ct, localizer, {"Modality": "MR", "BodyPartExamined": "KNEE"}):
        assert [r.match.matches(attrs) for r in reloaded] == [r.match.matches(attrs) for r in rules]


def test_unreadable_recorded_settings_are_a_config_error(tmp_path):
    (tmp_path / "node-settings.json").write_text("{not json")
    with pytest.raises(ConfigError, match="node-settings.json"):
        recorded_settings(tmp_path)
