"""The pipeline registry: built-in pipelines register by decorator, third-party ones by the
``dicom_node.pipelines`` entry-point group. A duplicate name is an error, not a silent override.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from pipelines.base import ImagingPipeline, SidecarPipeline

__all__ = ["register", "get", "names", "all_pipelines", "PipelineClass"]

PipelineClass = type[ImagingPipeline] | type[SidecarPipeline]

_BUILTIN_MODULES = (
    "pipelines.ct_seg.pipeline",
    "pipelines.mr_seg.pipeline",
    "pipelines.mr_brain.pipeline",
    "pipelines.xray_cls.pipeline",
    "pipelines.genomics.pipeline",
    "pipelines.drug.pipeline",
    "pipelines.prediction.pipeline",
)
_REGISTRY: dict[str, PipelineClass] = {}
_loaded = False


def register(cls: PipelineClass) -> PipelineClass:
    """Class decorator adding a pipeline under its ``name``."""
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"duplicate pipeline name {cls.name!r}: {existing.__module__} and {cls.__module__}")
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group="dicom_node.pipelines"):
        register(ep.load())


def get(name: str) -> PipelineClass:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(sorted(_REGISTRY)) or 'none'}") from None


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def all_pipelines() -> dict[str, PipelineClass]:
    _load()
    return dict(sorted(_REGISTRY.items()))
