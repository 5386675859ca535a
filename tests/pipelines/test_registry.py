"""The pipeline registry: every built-in is found, a duplicate name is an error."""

from __future__ import annotations

import pytest

from pipelines import registry
from pipelines.base import ImagingPipeline, SidecarPipeline


def test_builtin_pipelines_are_registered_with_their_queues():
    found = registry.all_pipelines()
    assert {n: c.kind for n, c in found.items()} == {
        "ct_seg": "imaging", "mr_seg": "imaging", "mr_brain": "imaging", "xray_cls": "imaging",
        "genomics": "sidecar", "drug": "sidecar", "prediction": "sidecar",
    }  # fmt: skip
    assert {c.queue for c in found.values() if issubclass(c, ImagingPipeline)} == {"gpu"}
    assert {c.queue for c in found.values() if issubclass(c, SidecarPipeline)} == {"cpu"}


def test_duplicate_name_is_an_error():
    existing = registry.get("ct_seg")

    class Impostor(existing):  # type: ignore[misc, valid-type]
        pass

    with pytest.raises(ValueError, match="duplicate pipeline name 'ct_seg'"):
        registry.register(Impostor)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="known: ct_seg, drug"):
        registry.get("nope")
