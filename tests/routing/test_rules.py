"""Rule matching, precedence and validation errors (no services needed)."""

from __future__ import annotations

import pytest

from dicom_node.config import load_settings
from dicom_node.errors import ConfigError
from dicom_node.routing.router import plan_jobs
from dicom_node.routing.rules import Condition

CT_CHEST = {"Modality": "CT", "BodyPartExamined": "CHEST", "SeriesDescription": "Axial 1.0 mm", "calling_ae": "CT1",
            "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"], "SliceThickness": "1.0", "Manufacturer": "ACME"}  # fmt: skip


def cond(data: dict) -> Condition:
    return Condition.model_validate(data)


@pytest.mark.parametrize(
    "condition, expected",
    [
        ({"Modality": "CT"}, True),
        ({"Modality": "ct"}, True),  # strings compare case-insensitively
        ({"Modality": "MR"}, False),
        ({"BodyPartExamined": ["HEAD", "CHEST"]}, True),
        ({"SeriesDescription": {"regex": "(?i)^axial"}}, True),
        ({"SeriesDescription": {"regex": "^axial"}}, False),
        ({"ImageType": {"contains": "AXIAL"}}, True),
        ({"ImageType": "LOCALIZER"}, False),
        ({"SliceThickness": {"lt": 2}}, True),
        ({"SliceThickness": {"gt": 2}}, False),
        ({"StudyDescription": {"exists": False}}, True),
        ({"calling_ae": "CT1"}, True),
        ({"all": [{"Modality": "CT"}, {"Manufacturer": "ACME"}]}, True),
        ({"all": [{"Modality": "CT"}, {"Manufacturer": "OTHER"}]}, False),
        ({"any": [{"Modality": "MR"}, {"Manufacturer": "ACME"}]}, True),
        ({"not": {"Modality": "CT"}}, False),
        ({"all": [{"Modality": "CT"}, {"not": {"any": [{"BodyPartExamined": "HEAD"}, {"calling_ae": "X"}]}}]}, True),
    ],
)
def test_condition_matching(condition, expected):
    assert cond(condition).matches(CT_CHEST) is expected


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"name": "a", "match": {"Modalty": "CT"}, "pipeline": "ct_seg"}, "'Modalty' is not a DICOM keyword"),
        ({"name": "a", "match": {"Modality": {"like": "C%"}}, "pipeline": "ct_seg"}, "unknown operator(s) ['like']"),
        ({"name": "a", "match": {"Modality": {"regex": "("}}, "pipeline": "ct_seg"}, "invalid regex"),
        ({"name": "a", "match": {"SliceThickness": {"lt": "thin"}}, "pipeline": "ct_seg"}, "lt needs a number, got 'thin'"),
        ({"name": "a", "match": {"Modality": "CT"}}, "a rule needs an action"),
        ({"name": "a", "match": {"Modality": "CT"}, "discard": True, "pipeline": "x"}, "discard cannot be combined"),
        ({"name": "a", "match": {"Modality": "CT"}, "pipeline": "p", "priority": "urgent"}, "priority"),
    ],
)
def test_invalid_rules_fail_with_a_message_naming_the_field(rule, message):
    with pytest.raises(ConfigError) as err:
        load_settings(rules=[rule])
    assert message in str(err.value) and "rules.0" in str(err.value)


def test_unknown_destination_names_the_rule_and_field():
    with pytest.raises(ConfigError, match="rule 'fwd' field 'forward': unknown destination 'archive'"):
        load_settings(rules=[{"name": "fwd", "match": {"Modality": "CT"}, "forward": ["archive"]}])


def _settings(rules: list[dict]):
    dests = {"archive": {"ae_title": "ARCH", "host": "127.0.0.1", "port": 104}, "ct1": {"ae_title": "CT1", "host": "127.0.0.1", "port": 105}}
    return load_settings(rules=rules, destinations=dests)


def test_every_matching_rule_applies_in_order_and_discard_stops_later_rules():
    settings = _settings([
        {"name": "drop-localizers", "match": {"ImageType": {"contains": "LOCALIZER"}}, "discard": True},
        {"name": "seg", "match": {"Modality": "CT"}, "pipeline": "ct_seg", "priority": "stat"},
        {"name": "archive", "match": {"Modality": ["CT", "MR"]}, "forward": ["archive"]},
    ])  # fmt: skip
    localizer = {**CT_CHEST, "ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}
    plan = plan_jobs(settings, "1.2.3", {"s1": CT_CHEST, "s2": localizer}, queue_of=lambda _: "gpu")
    assert plan.matches == {"s1": ["seg", "archive"], "s2": []} and plan.discarded == ["s2"]
    kinds = [(j.kind, j.series_uid, j.priority, j.destination) for j in plan.jobs]
    assert kinds == [("pipeline", "s1", 0, None), ("forward", None, 5, "archive")]
    forward = plan.jobs[1]
    assert forward.params == {"series": ["s1"]}


def test_results_return_to_the_calling_ae_and_the_rule_destinations():
    settings = _settings([{"name": "seg", "match": {"Modality": "CT"}, "pipeline": "ct_seg", "forward": ["archive"]}])
    [pipeline_job, _] = plan_jobs(settings, "1.2.3", {"s1": CT_CHEST}, queue_of=lambda _: "gpu").jobs
    assert pipeline_job.params == {"return_to": ["archive", "ct1"]}  # CT1 is the calling AE's destination


def test_forward_of_several_series_is_one_job_per_destination():
    settings = _settings([{"name": "fwd", "match": {"Modality": "CT"}, "forward": ["archive"]}])
    plan = plan_jobs(settings, "1.2.3", {"s1": CT_CHEST, "s2": CT_CHEST}, queue_of=lambda _: "gpu")
    assert [(j.kind, j.params) for j in plan.jobs] == [("forward", {"series": ["s1", "s2"]})]


