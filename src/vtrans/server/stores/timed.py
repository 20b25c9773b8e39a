"""A store that reports how long each of its operations took (for the store latency metric)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any, cast

from vtrans.server.stores.base import Store


class _Timed:
    """Delegates everything to ``store``; its coroutine methods call ``record(name, seconds)``
    when they return or raise. Attributes and properties (``name``, ``in_sync``…) are read live."""

    def __init__(self, store: Store, record: Callable[[str, float], None]) -> None:
        self._store, self._record = store, record

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attr):
            return attr
        record = self._record

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await attr(*args, **kwargs)
            finally:
                record(name, time.perf_counter() - start)

        self.__dict__[name] = timed  # found directly from now on
        return timed


def timed(store: Store, record: Callable[[str, float], None]) -> Store:
    """``store``, reporting each operation's name and duration to ``record``."""
    return cast(Store, _Timed(store, record))
