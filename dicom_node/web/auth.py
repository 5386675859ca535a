"""Bearer tokens and roles of the web face.

A token is 32 random bytes (``secrets.token_urlsafe``), shown once when created; the index
keeps only its SHA-256. A plain hash suffices because the token is high-entropy: no guess list
reaches it, so the slow, salted hashes passwords need buy nothing here. Lookup is by hash and
the stored hash is compared again with :func:`hmac.compare_digest`, so no timing depends on
how many leading characters of a guess were right.

Roles nest: ``viewer`` reads (GET, DICOMweb queries and retrievals), ``operator`` also
writes (STOW-RS, later job retry/cancel), ``admin`` also configures. Refusals are logged
with the token's name, the path and the peer — never the token.

A browser cannot add an Authorization header to page loads, so the dashboard's login form
(``/login``, open like ``/logout``) puts the token in an HttpOnly, SameSite=Strict cookie
(:data:`COOKIE`), accepted when no Authorization header is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from enum import IntEnum

from fastapi import HTTPException, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dicom_node.store.index import Index
from dicom_node.store.models import ApiToken, utcnow

__all__ = ["COOKIE", "LOGIN_PATH", "LOGOUT_PATH", "Caller", "Role", "TokenError", "access", "authenticate", "check", "create_token", "list_tokens", "revoke_token"]

log = logging.getLogger(__name__)

COOKIE = "dicom_node_token"
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"


class Role(IntEnum):
    """Roles in increasing power: each may do everything the ones below it may."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise TokenError(f"unknown role {name!r}; known: {', '.join(r.name.lower() for r in cls)}") from None


class TokenError(ValueError):
    """A token command that cannot be done (name taken, unknown name or role)."""


@dataclass(frozen=True)
class Caller:
    """Who made a request: the token's name and role."""

    name: str
    role: Role


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def create_token(index: Index, name: str, role: str) -> str:
    """Make a token named ``name`` with ``role``; return it (it cannot be read back later)."""
    checked = Role.named(role)
    if not name or len(name) > 64:
        raise TokenError("a token name has 1 to 64 characters")
    token = secrets.token_urlsafe(32)
    try:
        with index.sessions.begin() as session:
            session.add(ApiToken(name=name, role=checked.name.lower(), sha256=_digest(token)))
    except IntegrityError:
        raise TokenError(f"a token named {name!r} exists already (revoked ones keep their name)") from None
    log.info("token %r created with role %s", name, checked.name.lower())
    return token


def list_tokens(index: Index) -> list[ApiToken]:
    with index.sessions() as session:
        return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))


def revoke_token(index: Index, name: str) -> None:
    """Revoke the token ``name`` (TokenError when there is none, or it is revoked already)."""
    with index.sessions.begin() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.name == name))
        if row is None:
            raise TokenError(f"no token named {name!r}")
        if row.revoked_at is not None:
            raise TokenError(f"token {name!r} was revoked at {row.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
        row.revoked_at = utcnow()
    log.info("token %r revoked", name)


def authenticate(index: Index, token: str) -> Caller | None:
    """The caller ``token`` belongs to, or None for an unknown or revoked one."""
    digest = _digest(token)
    with index.sessions() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.sha256 == digest))
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.sha256, digest):
        return None
    return Caller(row.name, Role.named(row.role))


def _peer(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "unknown peer"


def access(request: Request) -> Caller | None:
    """The app-wide FastAPI dependency: a path in ``public_paths`` is open; any other needs a
    bearer token of a ``viewer`` to read (GET, HEAD) and of an ``operator`` to write."""
    if request.url.path in request.app.state.settings.http.public_paths or request.url.path in (LOGIN_PATH, LOGOUT_PATH):
        return None
    return check(request, Role.VIEWER if request.method in ("GET", "HEAD") else Role.OPERATOR)


def check(request: Request, role: Role) -> Caller:
    """The caller of ``request``, who must hold at least ``role``: HTTPException 401 when the
    bearer token is absent, unknown or revoked, 403 when its role is too low."""
    index: Index = request.app.state.index
    header = request.headers.get("authorization")
    scheme, _, token = header.partition(" ") if header is not None else ("bearer", "", request.cookies.get(COOKIE, ""))
    token = token.strip()
    caller = authenticate(index, token) if scheme.lower() == "bearer" and token else None
    if caller is None:
        why = "no bearer token" if scheme.lower() != "bearer" or not token else "unknown or revoked token"
        log.warning("401 %s %s from %s: %s", request.method, request.url.path, _peer(request), why)
        raise HTTPException(401, f"authentication required: {why}", headers={"WWW-Authenticate": "Bearer"})
    if caller.role < role:
        log.warning(
            "403 %s %s from %s: token %r has role %s, %s needed", request.method, request.url.path,
            _peer(request), caller.name, caller.role.name.lower(), role.name.lower(),
        )  # fmt: skip
        raise HTTPException(403, f"token {caller.name!r} has role {caller.role.name.lower()}; {role.name.lower()} needed")
    return caller
