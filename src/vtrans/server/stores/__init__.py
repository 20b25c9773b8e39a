"""Where jobs live: one interface (:class:`Store`), three backends.

``open_store("memory")``, ``open_store("sqlite", db_path="vtrans.db")`` or
``open_store("postgresql://user@host:5432/db")`` — the only place that knows them by name.
"""

from __future__ import annotations

from vtrans.server.stores.base import Delivery, NewJob, OnChange, Store, StoredJob, StoreError

__all__ = ["Delivery", "NewJob", "OnChange", "Store", "StoreError", "StoredJob", "make_store"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def make_store(spec: str, db_path: str = "vtrans.db") -> Store:
    """The store ``spec`` names (``memory``, ``sqlite`` with ``db_path``, or a PostgreSQL URL),
    not yet opened. Raises ``ValueError`` for anything else."""
    if spec == "memory":
        from vtrans.server.stores.memory import MemoryStore

        return MemoryStore()
    if spec == "sqlite":
        from vtrans.server.stores.sqlite import sqlite_store

        return sqlite_store(db_path)
    if spec.startswith(POSTGRES_SCHEMES):
        try:
            from vtrans.server.stores.postgres import postgres_store
        except ImportError:
            raise ValueError(
                "a PostgreSQL store needs the asyncpg driver: pip install 'vtrans[postgresql]'"
            ) from None
        return postgres_store(spec)
    raise ValueError(f"--store must be sqlite, memory or a postgresql://… URL, not {spec!r}")


def is_store_spec(spec: str) -> bool:
    return spec in ("memory", "sqlite") or spec.startswith(POSTGRES_SCHEMES)
