"""Test your own code against vtrans: a fake service on virtual time, and instant waits.

    from vtrans.testing import FakeService

    with FakeService() as fake:  # the real service in-process, no socket, virtual time
        client = fake.client()   # or fake.async_client()

See :mod:`vtrans.testing.fake`. For a client of your own making (an ``httpx2.MockTransport``,
say), make every wait instant instead:

    import vtrans.testing

    vtrans.testing.set_testing(True)        # for the whole session (e.g. in conftest.py)
    with vtrans.testing.set_testing(True):  # or for a block
        client.wait(job_id)                 # polls as usual, but sleeps take no time

While on, clients sleep on a :class:`~vtrans.client.clock.VirtualClock`: the policy, deadlines and
retries behave exactly as in production, only the waiting is skipped. It leaves alone a client that
talks to a real server over the network: that server's jobs take real time, so such a client
waits in real time (a virtual wait there could only run out its deadline), as it does with a
clock of its own (``Client(clock=...)``; a :class:`FakeService`'s clients have one).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vtrans.testing.fake import FakeService, Webhook

__all__ = ["FakeService", "Webhook", "is_testing", "set_testing"]

_active = False


class set_testing:
    """Turn instant waits on or off; as a context manager, restore the previous setting on exit."""

    def __init__(self, on: bool) -> None:
        global _active
        self._previous, _active = _active, on

    def __enter__(self) -> set_testing:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        global _active
        _active = self._previous


def is_testing() -> bool:
    """Whether waits are instant."""
    return _active


def __getattr__(name: str) -> Any:
    if name in ("FakeService", "Webhook"):  # imported on use: it needs the service ('vtrans[server]')
        from vtrans.testing import fake

        return getattr(fake, name)
    raise AttributeError(name)
