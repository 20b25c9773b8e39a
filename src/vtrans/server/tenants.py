"""Tenants: who an API key belongs to, and each tenant's webhook signing secrets.

Each configured key is a tenant (``NAME:KEY``, or ``KEY`` alone, named after a digest of the key).
A job belongs to the tenant that created it; without keys the service is an open sandbox and
every job belongs to the tenant ``""``. Each tenant signs its webhooks with a secret of its own,
kept in the store; rotating it keeps the previous one signing alongside for a grace period
(Standard Webhooks allows several signatures in one header).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    pass
from vtrans.server.stores import Store

#: A tenant name: what goes in logs and in the store.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SECRET_KEY = "webhook_secret"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def check_secret(secret: str) -> None:
    """Raise ``ValueError`` unless ``secret`` is ``whsec_`` and a base64 key of 24 to 64 bytes."""
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        key = b""
    if not secret.startswith("whsec_") or not 24 <= len(key) <= 64:
        raise ValueError("the webhook secret must be 'whsec_' and a base64 key of 24 to 64 bytes")


class ApiKey(msgspec.Struct, frozen=True):
    tenant: str
    key: str


def parse_keys(specs: Iterable[str]) -> tuple[ApiKey, ...]:
    """``NAME:KEY`` or ``KEY`` items (blank ones skipped); ``ValueError`` says what is wrong."""
    keys: list[ApiKey] = []
    for raw in specs:
        spec = raw.strip()
        if not spec:
            continue
        name, sep, key = spec.partition(":")
        if not sep:
            name, key = "key-" + hashlib.sha256(spec.encode()).hexdigest()[:8], spec
        if not NAME.match(name):
            raise ValueError(f"a tenant name is 1-64 letters, digits, '_', '.' or '-': not {name!r}")
        if not key or not key.isascii() or not key.isprintable() or " " in key:
            raise ValueError(f"the API key of {name!r} must be printable ASCII characters, without spaces")
        keys.append(ApiKey(name, key))
    names = [k.tenant for k in keys]
    if len(set(names)) != len(names) or len({k.key for k in keys}) != len(keys):
        raise ValueError("each API key, and each tenant name, may be given once")
    return tuple(keys)


class Secrets(msgspec.Struct, omit_defaults=True):
    """A tenant's signing secrets: the current one, and the one it replaced until ``previous_until``."""

    secret: str
    previous: str | None = None
    previous_until: float | None = None

    def signing(self, now: float) -> list[str]:
        """The secrets that sign a webhook sent at ``now``."""
        alive = self.previous is not None and self.previous_until is not None and now < self.previous_until
        return [self.secret, self.previous] if alive and self.previous else [self.secret]


class Tenants:
    """The keys, by a digest of the key (a lookup that takes the same time for every wrong key)."""

    def __init__(
        self, keys: tuple[ApiKey, ...], store: Store, fixed_secret: str | None, grace: float
    ) -> None:
        self._by_digest = {hashlib.sha256(k.key.encode()).digest(): k.tenant for k in keys}
        self.store, self.fixed_secret, self.grace = store, fixed_secret, grace

    @property
    def open(self) -> bool:
        """No keys: anyone may call, as the tenant ``""``."""
        return not self._by_digest

    def tenant(self, token: bytes) -> str | None:
        """The tenant whose key ``token`` is, if any."""
        return self._by_digest.get(hashlib.sha256(token).digest())

    def from_authorization(self, header: bytes | None) -> str | None:
        """The tenant of an ``Authorization: Bearer <key>`` header's bytes, if any."""
        scheme, _, token = (header or b"").partition(b" ")
        return self.tenant(token.strip()) if scheme.lower() == b"bearer" else None

    async def secrets(self, tenant: str) -> Secrets:
        """The tenant's secrets, made the first time they are asked for (by any process)."""
        if self.fixed_secret is not None:
            return Secrets(self.fixed_secret)
        stored = await self.store.meta_setdefault(
            _key(tenant), msgspec.json.encode(Secrets(new_secret())).decode()
        )
        return _decode(stored)

    async def rotate(self, tenant: str, now: float) -> Secrets:
        """A new current secret; the old one keeps signing for ``grace`` seconds."""
        old = await self.secrets(tenant)
        rotated = Secrets(new_secret(), old.secret, now + self.grace)
        await self.store.set_meta(_key(tenant), msgspec.json.encode(rotated).decode())
        return rotated


def _key(tenant: str) -> str:
    return _SECRET_KEY if not tenant else f"{_SECRET_KEY}:{tenant}"


def _decode(stored: str) -> Secrets:
    if stored.startswith("whsec_"):  # written by vtrans 0.1: the secret alone
        return Secrets(stored)
    return msgspec.json.decode(stored, type=Secrets)
