"""Declarative routing rules (YAML), matched against each series of a complete study.

A rule::

    - name: ct-chest
      match:                       # a condition tree: all / any / not, or attribute tests
        all:
          - Modality: CT           # equality (strings compared case-insensitively)
          - BodyPartExamined: [CHEST, THORAX]       # any of
          - SeriesDescription: {regex: "(?i)axial"}  # operators: equals, in, regex, contains,
          - calling_ae: CT_SCANNER_1                 #   exists, gt, lt
      priority: stat               # stat | routine
      pipeline: ct_seg             # run an imaging pipeline on each matching series
      forward: [archive]           # C-STORE/STOW the whole study to these destinations
      fetch_priors: {source: pacs, lookback_days: 365, max_count: 3}
      notify: [ris, fhir, teams]   # hl7/fhir/webhook destinations told of each pipeline result
                                   #   (unset: the pipeline's own ``notify`` setting; [] for none)

Any DICOM keyword of the series' first instance can be tested, plus ``calling_ae`` and, when
the RIS sent an order for the study, ``order.priority`` (stat, asap, routine),
``order.procedure_code``, ``order.procedure``, ``order.accession_number`` and ``order.placer_order``. Rules are
evaluated in file order and every matching rule applies; a matching ``discard: true`` rule
drops the series from all later rules. Nothing is ever ``eval``'d: operators are a closed set.

A first instance whose elements pydicom cannot read to values raises :class:`UnreadableSeries`
naming the element, which the router turns into a quarantined series (issue 12).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_serializer, model_validator
from pydicom import dcmread
from pydicom.datadict import keyword_dict
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

__all__ = ["Condition", "FetchPriors", "Rule", "UnreadableSeries", "read_series_attributes", "series_attributes", "PRIORITY"]

PRIORITY = {"stat": 0, "routine": 5}
_OPERATORS = {"equals", "in", "regex", "contains", "exists", "gt", "lt"}
_PSEUDO = {"calling_ae"}
# the RIS's order for the study, when one came in (dicom_node.orders): stat | asap | routine, …
_PSEUDO |= {"order.accession_number", "order.priority", "order.procedure_code", "order.procedure", "order.placer_order"}


class Condition(BaseModel):
    """A node of the match tree; exactly one of all/any/not/attribute tests."""

    model_config = ConfigDict(extra="forbid")

    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(None, alias="not")
    tests: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise ValueError("a condition must be a mapping")
        structural = {k: v for k, v in data.items() if k in ("all", "any", "not")}
        tests = {k: v for k, v in data.items() if k not in ("all", "any", "not", "tests")}
        return {**structural, "tests": tests}

    @field_validator("tests")
    @classmethod
    def _check_tests(cls, tests: dict[str, Any]) -> dict[str, Any]:
        for key, expected in tests.items():
            if key not in keyword_dict and key not in _PSEUDO:
                raise ValueError(f"{key!r} is not a DICOM keyword (or calling_ae, order.*)")
            if isinstance(expected, Mapping):
                unknown = set(expected) - _OPERATORS
                if unknown:
                    raise ValueError(f"{key}: unknown operator(s) {sorted(unknown)}; use {sorted(_OPERATORS)}")
                for op in ("gt", "lt"):
                    if op in expected:
                        try:
                            float(expected[op])
                        except (TypeError, ValueError):
                            raise ValueError(f"{key}: {op} needs a number, got {expected[op]!r}") from None
                if "regex" in expected:
                    try:
                        re.compile(str(expected["regex"]))
                    except re.error as exc:
                        raise ValueError(f"{key}: invalid regex: {exc}") from exc
        return tests

    @model_serializer
    def _as_written(self) -> dict[str, Any]:
        """Dump as a rule is written (``{all: [...]}``, ``{Modality: CT}``), so that a dumped
        condition loads back the same: serve's recorded settings and ``config show`` rely on it."""
        structural = {"all": self.all, "any": self.any, "not": self.not_}
        return {**{k: v for k, v in structural.items() if v is not None}, **self.tests}

    def matches(self, attrs: Mapping[str, Any]) -> bool:
        if self.all is not None and not all(c.matches(attrs) for c in self.all):
            return False
        if self.any is not None and not any(c.matches(attrs) for c in self.any):
            return False
        if self.not_ is not None and self.not_.matches(attrs):
            return False
        return all(_test(attrs.get(key), expected) for key, expected in self.tests.items())


def _norm(value: Any) -> str:
    return str(value).strip().upper()


def _values(actual: Any) -> list[Any]:
    if actual is None:
        return []
    if isinstance(actual, (list, tuple)):
        return list(actual)
    return [actual]


def _test(actual: Any, expected: Any) -> bool:
    values = _values(actual)
    if isinstance(expected, list):
        return any(_norm(v) == _norm(e) for v in values for e in expected)
    if not isinstance(expected, Mapping):
        return any(_norm(v) == _norm(expected) for v in values)
    for op, arg in expected.items():
        if op == "exists" and bool(values) != bool(arg):
            return False
        if op == "equals" and not any(_norm(v) == _norm(arg) for v in values):
            return False
        if op == "in" and not any(_norm(v) == _norm(a) for v in values for a in _values(arg)):
            return False
        if op == "regex" and not any(re.search(str(arg), str(v)) for v in values):
            return False
        if op == "contains" and not any(_norm(arg) in _norm(v) for v in values):
            return False
        if op in ("gt", "lt"):
            try:
                nums = [float(v) for v in values]
            except (TypeError, ValueError):
                return False
            if not nums or not all((n > float(arg)) if op == "gt" else (n < float(arg)) for n in nums):
                return False
    return True


class FetchPriors(BaseModel):
    """Query ``source`` for the patient's earlier studies and retrieve them before analysis."""

    model_config = ConfigDict(extra="forbid")

    source: str
    modality: str | None = None
    lookback_days: int = Field(365 * 3, gt=0)
    max_count: int = Field(3, gt=0)
    method: Literal["move", "get"] = Field("move", description="move: the PACS must know our AE title; get: our own association")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    match: Condition
    priority: Literal["stat", "routine"] = "routine"
    pipeline: str | None = None
    forward: list[str] = Field(default_factory=list)
    fetch_priors: FetchPriors | None = None
    notify: list[str] | None = None
    discard: bool = False

    @model_validator(mode="after")
    def _has_action(self) -> Rule:
        if not (self.pipeline or self.forward or self.fetch_priors or self.discard):
            raise ValueError("a rule needs an action: pipeline, forward, fetch_priors or discard")
        if self.discard and (self.pipeline or self.forward or self.fetch_priors):
            raise ValueError("discard cannot be combined with other actions")
        if self.notify and not self.pipeline:
            raise ValueError("notify announces a pipeline's result: the rule needs a pipeline")
        return self

    @property
    def priority_value(self) -> int:
        return PRIORITY[self.priority]


class UnreadableSeries(ValueError):
    """A series' first instance cannot be read to the attributes the rules test: ``where`` (the
    file, or one element) and the ``cause`` pydicom or the OS raised."""

    def __init__(self, where: str, cause: BaseException) -> None:
        super().__init__(f"{where} cannot be read: {type(cause).__name__}: {cause}")
        self.where = where
        self.cause = cause

    @property
    def summary(self) -> str:
        """The reason without the cause's text, which may quote a value of the instance (PHI)."""
        return f"{self.where} cannot be read ({type(self.cause).__name__})"


# What pydicom raises reading a damaged file or converting a damaged raw element to a value (an
# unknown VR, a value of the wrong length, a bad encoding…): what the receive side's check
# (dicom_node.store.header) catches for the same reason.
_UNDECODABLE = (NotImplementedError, ValueError, TypeError, KeyError, AttributeError, IndexError, EOFError, struct.error, zlib.error, RecursionError)
_NOT_TESTED_VRS = ("SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN")


def series_attributes(header: Dataset, calling_ae: str) -> dict[str, Any]:
    """Attributes a rule may test, from a series' first instance; raises :class:`UnreadableSeries`
    naming the first element pydicom cannot convert. Sequence items are converted too, so that
    whatever reads this header afterwards (the provenance check) cannot fail on it."""
    attrs: dict[str, Any] = {"calling_ae": calling_ae}
    for tag in list(header.keys()):
        try:
            elem = header[tag]
            if elem.VR == "SQ":
                for item in elem.value:
                    for _ in item.iterall():  # iterating converts each element
                        pass
            elif elem.keyword and elem.VR not in _NOT_TESTED_VRS:
                value = elem.value
                attrs[elem.keyword] = list(value) if elem.VM > 1 else value
        except _UNDECODABLE as exc:
            raise UnreadableSeries(f"element {tag}", exc) from exc
    return attrs


def read_series_attributes(path: str | Path, calling_ae: str) -> tuple[dict[str, Any], Dataset]:
    """:func:`series_attributes` of the file at ``path`` (without its pixel data), and its header;
    raises :class:`UnreadableSeries` when the file is gone or is not DICOM pydicom can read."""
    try:
        header = dcmread(path, stop_before_pixels=True)
    except (OSError, InvalidDicomError, *_UNDECODABLE) as exc:
        raise UnreadableSeries("its first instance", exc) from exc
    return series_attributes(header, calling_ae), header
