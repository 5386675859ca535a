"""Submitting sidecar jobs (CLI and Python API): the input is copied into the node's data
folder first, so the job does not depend on a file the user may move or delete."""

from __future__ import annotations

import inspect
import shutil
import typing
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dicom_node.config import Settings
from dicom_node.errors import ConfigError
from dicom_node.queue.outbox import NewJob, add_jobs
from dicom_node.store.index import Index

__all__ = ["submit_sidecar"]


def submit_sidecar(
    settings: Settings,
    index: Index,
    kind: str,
    input_path: Path,
    patient_id: str | None = None,
    study_uid: str | None = None,
    params: dict[str, Any] | None = None,
    send_to: list[str] | None = None,
) -> int:
    """Persist a sidecar job (the relay queues it on its pipeline's queue); returns the job id."""
    from pipelines.registry import get

    cls = get(kind)
    if cls.kind != "sidecar":
        raise ConfigError(f"{kind!r} is an imaging pipeline; sidecar jobs are {_sidecars()}")
    params = coerce_params(cls.run, params or {})
    for dest in send_to or []:
        if dest not in settings.destinations:
            raise ConfigError(f"unknown destination {dest!r}")
    inbox = settings.data_dir / "inputs" / uuid.uuid4().hex
    inbox.mkdir(parents=True)
    copy = inbox / input_path.name
    shutil.copy2(input_path, copy)
    for companion in (".tbi", ".csi"):  # a bgzipped VCF's index travels with it
        index_file = input_path.with_name(input_path.name + companion)
        if index_file.exists():
            shutil.copy2(index_file, inbox / index_file.name)
    job = NewJob(
        kind="sidecar", queue=cls.queue, study_uid=study_uid, pipeline=kind,
        params={"input": str(copy), "patient_id": patient_id, "params": params, "send_to": send_to or []},
    )  # fmt: skip
    with index.sessions.begin() as session:
        [row] = add_jobs(session, [job], settings.queue.max_attempts)
        return row.id


def coerce_params(run: Callable[..., Any], params: dict[str, Any]) -> dict[str, Any]:
    """Turn ``NAME=VALUE`` strings from the command line into the types ``run`` declares;
    an unknown name or a value of the wrong type is a ConfigError now, not a dead job later."""
    hints = typing.get_type_hints(run)
    fixed = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = {n for n, p in inspect.signature(run).parameters.items() if p.kind in fixed} - {"self", "input_path", "patient_id"}
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name not in names:
            raise ConfigError(f"unknown parameter {name!r}; this pipeline takes {', '.join(sorted(names)) or 'none'}")
        target = next((t for t in typing.get_args(hints.get(name)) or (hints.get(name),) if t in (int, float, bool)), None)
        if isinstance(value, str) and target is not None:
            try:
                value = value.lower() in ("1", "true", "yes") if target is bool else target(value)
            except ValueError as exc:
                raise ConfigError(f"parameter {name}: {value!r} is not a {target.__name__}") from exc
        out[name] = value
    return out


def _sidecars() -> str:
    from pipelines.registry import all_pipelines

    return ", ".join(n for n, c in all_pipelines().items() if c.kind == "sidecar")
