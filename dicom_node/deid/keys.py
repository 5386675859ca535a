"""Pseudonyms for a de-identifying destination, and the key to undo them, kept in the index.

Each destination has its own random secret (never sent), so two destinations cannot link
their pseudonyms. A pseudonym is an HMAC of the original under that secret — the same
patient or UID gets the same pseudonym on every forward, from any process — and every
pseudonym handed out is recorded with its original, which is what re-identification reads
(an HMAC cannot be inverted). The tables live in the index database beside the store's, in
their own metadata, created on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from sqlalchemy import JSON, Column, Engine, MetaData, String, Table, insert, select
from sqlalchemy.exc import IntegrityError

__all__ = ["PseudonymKeys"]

_metadata = MetaData()
_secrets = Table(
    "deid_secret",
    _metadata,
    Column("destination", String(128), primary_key=True),
    Column("secret", String(64), nullable=False),
)
_map = Table(
    "deid_pseudonym",
    _metadata,
    Column("destination", String(128), primary_key=True),
    Column("pseudonym", String(128), primary_key=True),
    Column(
        "kind", String(16), nullable=False
    ),  # "uid" or "study" (a study UID: identity attached)
    Column("original", String(128), nullable=False),
    Column(
        "identity", JSON, nullable=True
    ),  # the original Patient/Study identifying attributes
)


class PseudonymKeys:
    """Pseudonyms of one destination; :meth:`uid` and :meth:`patient_id` make them, :meth:`original` reverses."""

    def __init__(self, engine: Engine, destination: str) -> None:
        self.engine = engine
        self.destination = destination
        _metadata.create_all(engine, checkfirst=True)
        self._secret = self._load_secret()
        self._known: set[str] = set()

    def _load_secret(self) -> bytes:
        with self.engine.begin() as conn:
            row = conn.execute(
                select(_secrets.c.secret).where(
                    _secrets.c.destination == self.destination
                )
            ).first()
            if row is not None:
                return bytes.fromhex(row[0])
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(_secrets).values(
                        destination=self.destination, secret=secrets.token_hex(32)
                    )
                )
        except IntegrityError:  # another process made it first: use theirs
            pass
        return self._load_secret()

    def _digest(self, kind: str, original: str) -> bytes:
        return hmac.new(
            self._secret, f"{kind}:{original}".encode(), hashlib.sha256
        ).digest()

    def uid(self, original: str) -> str:
        """A UID under the 2.25 root (PS3.5 B.2: a UUID-derived UID), at most 44 characters."""
        pseudonym = f"2.25.{int.from_bytes(self._digest('uid', original)[:16], 'big')}"
        self._remember(pseudonym, "uid", original)
        return pseudonym

    def patient_id(self, original: str) -> str:
        pseudonym = "ANON" + self._digest("patient", original)[:8].hex().upper()
        self._remember(pseudonym, "patient", original)
        return pseudonym

    def remember_study(self, pseudonym: str, identity: dict[str, Any]) -> None:
        """Keep the original study's identifying attributes for re-identification."""
        with self.engine.begin() as conn:
            conn.execute(
                _map.update()
                .where(
                    _map.c.destination == self.destination,
                    _map.c.pseudonym == pseudonym,
                )
                .values(kind="study", identity=json.loads(json.dumps(identity)))
            )

    def _remember(self, pseudonym: str, kind: str, original: str) -> None:
        if pseudonym in self._known:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(_map).values(
                        destination=self.destination,
                        pseudonym=pseudonym,
                        kind=kind,
                        original=original,
                    )
                )
        except (
            IntegrityError
        ):  # recorded before (same original: the HMAC is deterministic)
            pass
        self._known.add(pseudonym)

    def original(self, pseudonym: str) -> tuple[str, dict[str, Any] | None] | None:
        """The original behind ``pseudonym`` and, for a study UID, its identity; None when not ours."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(_map.c.original, _map.c.identity).where(
                    _map.c.destination == self.destination,
                    _map.c.pseudonym == pseudonym,
                )
            ).first()
        return None if row is None else (row[0], row[1])
