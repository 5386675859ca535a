"""C-FIND attribute matching (PS3.4 C.2.2.2) translated to SQL conditions the database can use
its indexes for, never evaluated row by row in Python.

- Universal matching (C.2.2.2.3): an empty value, or a lone ``*``, adds no condition.
- Single value matching (C.2.2.2.1): equality; case-sensitive except for PN.
- Wildcard matching (C.2.2.2.4): ``*`` and ``?`` in text and PN values. SQLite's LIKE ignores
  ASCII case, so case-sensitive wildcards use GLOB there (and LIKE with an escape character
  on other databases).
- Range matching (C.2.2.2.5): ``a-b``, ``a-`` and ``-b`` for DA and TM, compared as strings
  (the index stores ``YYYYMMDD`` and ``HHMMSS[.F]``); a range never matches an empty value.
- List of UID matching (C.2.2.2.2): backslash-separated UIDs become ``IN``.
- Several values of another key (C.2.2.2.8) match when any of them does.

PN case rule (our choice under C.2.2.2.1): PN values match case-insensitively, by the
database's ``lower()`` on both sides: ASCII only on SQLite, full Unicode on PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, func, literal, or_, select
from sqlalchemy.orm import aliased

from dicom_node.qr.keys import Key, Match
from dicom_node.qr.model import QRError, QRStatus
from dicom_node.store.models import Series, Study

__all__ = ["condition", "modalities_condition", "has_wildcard"]

_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?$")


def has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _like_pattern(value: str) -> str:
    """``*``/``?`` → ``%``/``_``, with LIKE's own metacharacters escaped by backslash."""
    out = []
    for ch in value:
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def _glob_pattern(value: str) -> str:
    """GLOB already means ``*`` and ``?``; a literal ``[`` must be written ``[[]``."""
    return value.replace("[", "[[]")


def _text(column: ColumnElement[str], value: str, dialect: str) -> ColumnElement[bool]:
    if not has_wildcard(value):
        return column == value
    if dialect == "sqlite":
        return column.op("GLOB")(_glob_pattern(value))
    return column.like(_like_pattern(value), escape="\\")


def _pn(column: ColumnElement[str], value: str) -> ColumnElement[bool]:
    if not has_wildcard(value):
        return func.lower(column) == func.lower(literal(value))
    return column.ilike(_like_pattern(value), escape="\\")


def _bound(keyword: str, value: str, pattern: re.Pattern[str]) -> str:
    value = value.strip().replace(":", "") if pattern is _TIME else value.strip().replace(".", "")
    if not pattern.match(value):
        raise QRError(QRStatus.UNABLE_TO_PROCESS, f"{keyword}: not a valid value or range")
    return value


def _range(column: ColumnElement[str], key: Key, value: str) -> ColumnElement[bool]:
    pattern = _DATE if key.match is Match.DATE else _TIME
    if "-" not in value:
        return column == _bound(key.keyword, value, pattern)
    low_s, _, high_s = value.partition("-")
    if not low_s.strip() and not high_s.strip():
        raise QRError(QRStatus.UNABLE_TO_PROCESS, f"{key.keyword}: a range needs at least one bound")
    terms: list[ColumnElement[bool]] = [column != ""]
    if low_s.strip():
        terms.append(column >= _bound(key.keyword, low_s, pattern))
    if high_s.strip():
        high = _bound(key.keyword, high_s, pattern)
        if pattern is _TIME:
            # "1300" means 13:00:00; every fraction of that last second is still within range.
            high = high.split(".")[0].ljust(6, "0") + ".999999"
        terms.append(column <= high)
    return and_(*terms)


def _int(column: ColumnElement[int | None], key: Key, value: str) -> ColumnElement[bool]:
    try:
        return column == int(value)
    except ValueError:
        raise QRError(QRStatus.UNABLE_TO_PROCESS, f"{key.keyword}: not an integer") from None


def condition(key: Key, values: Sequence[str], dialect: str) -> ColumnElement[bool] | None:
    """The SQL condition for ``key`` matching ``values`` (the element's values), or None for
    universal matching. Raises QRError(0xC000) for a value the key's VR cannot match."""
    values = [v.strip() for v in values if v.strip()]
    if not values or values == ["*"]:
        return None
    column = key.column
    if key.match is Match.UID:
        if any(has_wildcard(v) for v in values):
            raise QRError(QRStatus.UNABLE_TO_PROCESS, f"{key.keyword}: wildcards are not allowed in UIDs")
        return column == values[0] if len(values) == 1 else column.in_(values)  # type: ignore[arg-type]
    if key.match in (Match.DATE, Match.TIME, Match.INT) and len(values) > 1:
        raise QRError(QRStatus.UNABLE_TO_PROCESS, f"{key.keyword}: one value or one range expected")
    if key.match in (Match.DATE, Match.TIME):
        return _range(column, key, values[0])  # type: ignore[arg-type]
    if key.match is Match.INT:
        return _int(column, key, values[0])
    if key.match is Match.PN:
        terms = [_pn(column, v) for v in values]  # type: ignore[arg-type]
    else:
        terms = [_text(column, v, dialect) for v in values]  # type: ignore[arg-type]
    return terms[0] if len(terms) == 1 else or_(*terms)


def modalities_condition(values: Sequence[str], dialect: str) -> ColumnElement[bool] | None:
    """ModalitiesInStudy (C.6.2.1.2): the study has a series of any of the given modalities."""
    values = [v.strip() for v in values if v.strip()]
    if not values or values == ["*"]:
        return None
    se = aliased(Series)
    terms = [_text(se.modality, v, dialect) for v in values]
    return select(se.id).where(se.study_pk == Study.id).where(or_(*terms)).correlate(Study).exists()
