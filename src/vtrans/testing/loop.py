"""An asyncio event loop on virtual time: when it has nothing to do but wait for a timer, the
clock jumps to that timer instead of sleeping. What runs on it takes no real time to wait.

It is meant for code that does no real I/O (an ASGI app called in-process): a wait with no timer
to jump to would last forever, so it is an error instead.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

from vtrans.client.clock import VirtualClock


class _JumpingSelector(selectors.BaseSelector):
    """A selector that, where the loop would block, advances the clock by the timeout."""

    def __init__(self, clock: VirtualClock) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)  # the loop's own wake-up pipe, at least
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError(
                "the in-process service would wait forever: nothing is scheduled and it has no real I/O"
            )
        self._clock.sleep(timeout)
        return []

    def close(self) -> None:
        self._real.close()

    def get_map(self) -> Any:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose time is ``clock``'s, and which jumps it instead of sleeping."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__(_JumpingSelector(clock))
        self._virtual = clock

    def time(self) -> float:
        return self._virtual.now()
