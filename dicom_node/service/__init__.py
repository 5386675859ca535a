"""What the node can tell and do, as plain functions over its index and settings: the one
layer that both the CLI (:mod:`dicom_node.cli`) and the REST API (:mod:`dicom_node.web.api`)
call, so no listing, filter or action is written twice.

* :mod:`.jobs` — jobs filtered by state/queue/pipeline/study, retry, cancel, dead letters;
* :mod:`.studies` — studies with their results and jobs, a study's timeline;
* :mod:`.catalog` — rules (and a dry run), pipelines with their models, destinations (and a check);
* :mod:`.stats` — queue depths, throughput and time to result over the last hours, node health.

Errors are :class:`ServiceError` subclasses; the CLI prints them, the API maps them to 404/409.
"""

from __future__ import annotations

__all__ = ["Conflict", "NotFound", "ServiceError"]


class ServiceError(Exception):
    """A request the node cannot do as asked."""


class NotFound(ServiceError):
    """No such study, job, rule or destination."""


class Conflict(ServiceError):
    """The thing exists but is in a state that forbids the action (a running job cancelled…)."""
