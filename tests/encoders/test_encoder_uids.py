"""Deterministic UIDs: same inputs, same UID; any change, a different one."""

from __future__ import annotations

from pydicom.uid import UID

from dicom_node.encoders import AlgorithmInfo, derive_uid, device_uid, result_uid


def test_result_uid_is_deterministic_and_valid() -> None:
    first = result_uid("1.2.3", "ct-lesion", "1.0", "seg")
    assert first == result_uid("1.2.3", "ct-lesion", "1.0", "seg")
    assert UID(first).is_valid and len(first) <= 64


def test_result_uid_changes_with_each_part() -> None:
    base = result_uid("1.2.3", "ct-lesion", "1.0", "seg")
    assert base != result_uid("1.2.4", "ct-lesion", "1.0", "seg")
    assert base != result_uid("1.2.3", "mr-lesion", "1.0", "seg")
    assert base != result_uid("1.2.3", "ct-lesion", "1.1", "seg")
    assert base != result_uid("1.2.3", "ct-lesion", "1.0", "seg-report")


def test_parts_do_not_run_together() -> None:
    assert derive_uid("ab", "c") != derive_uid("a", "bc")


def test_device_uid_changes_when_the_model_is_retrained() -> None:
    before = AlgorithmInfo("ct-lesion", "1.0", "unet", "sha256:aaaa")
    after = AlgorithmInfo("ct-lesion", "1.0", "unet", "sha256:bbbb")
    assert before.device_uid != after.device_uid
    assert before.device_uid == device_uid("ct-lesion", "1.0", "sha256:aaaa")
