"""The synchronous client: a thin driver of the flows in :mod:`vtrans.client.core` and
:mod:`vtrans.client.waiting`."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

import httpx2

from vtrans.client import core, waiting
from vtrans.client.base import POOL_LIMITS, ClientBase, as_simulate, prepare
from vtrans.client.clock import Clock
from vtrans.client.deadline import bounded, events, http_transport
from vtrans.client.hooks import Hook
from vtrans.client.policy import PollPolicy, RetryPolicy
from vtrans.client.waiting import Transport, WaitOptions
from vtrans.protocol import Job, Simulate, Status

T = TypeVar("T")
MakeFlow = Callable[[core.Settings], core.Flow[T]]


class Client(ClientBase):
    """Submit translation jobs and wait for them.

    ``base_url`` defaults to ``$VTRANS_URL`` or ``http://127.0.0.1:8000``; ``api_key`` to
    ``$VTRANS_API_KEY``. ``timeout`` bounds each request's whole exchange (connect, headers, body);
    ``poll`` and ``retry`` tune waiting and retries; ``hooks`` (:mod:`vtrans.client.hooks`) are
    told of each request, retry and wait; ``clock`` and ``rng`` are for tests. Pass
    ``http_client`` to bring your own ``httpx2.Client`` (its base URL is then yours to set; the API
    key is still sent; give it ``transport=vtrans.client.http_transport()`` to keep whole-exchange bounds).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        poll: PollPolicy | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        http_client: httpx2.Client | None = None,
        hooks: Iterable[Hook] = (),
    ) -> None:
        super().__init__(base_url, api_key, poll, retry, clock, rng, timeout, hooks)
        self._http = http_client or httpx2.Client(
            base_url=self.base_url, timeout=timeout, transport=http_transport(limits=POOL_LIMITS)
        )

    def create(
        self,
        language: str,
        video_seconds: float,
        *,
        source_url: str | None = None,
        callback_url: str | None = None,
        simulate: Simulate | dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Submit a translation of ``video_seconds`` of video into ``language``."""
        sim = as_simulate(simulate)
        return self._run(
            lambda s: core.create(
                s,
                language,
                video_seconds,
                source_url=source_url,
                callback_url=callback_url,
                simulate=sim,
                idempotency_key=idempotency_key,
            )
        )

    def get(self, job_id: str) -> Job:
        """The job's state now."""
        return self._run(lambda s: core.get(s, job_id))

    def status(self, job_id: str | None = None) -> Status:
        """The spec's ``GET /status`` (``?job_id=`` with ``job_id``, where the server has it): its
        ``result``, exactly as the spec says; :meth:`get` has the whole job."""
        return self._run(lambda s: core.status(s, job_id))

    def cancel(self, job_id: str) -> Job:
        """Cancel a pending job; it ends as ``error`` with code ``cancelled``."""
        return self._run(lambda s: core.cancel(s, job_id))

    def jobs(
        self, result: Literal["pending", "completed", "error"] | None = None, *, page_size: int = 50
    ) -> Iterator[Job]:
        """Every job, newest first (optionally only those with ``result``), page after page."""
        yield from self._iterate(lambda s: core.list_jobs(s, result, page_size), [])

    @overload
    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = ...,
        on_progress: Callable[[Job], object] | None = ...,
        raise_on_error: bool = ...,
        cancel_on_timeout: bool = ...,
        transport: Transport = ...,
        expected: float | tuple[float, float] | None = ...,
    ) -> Job: ...

    @overload
    def wait(
        self,
        job_id: None = None,
        *,
        timeout: float | None = ...,
        on_progress: Callable[[Job], object] | None = ...,
        raise_on_error: bool = ...,
        cancel_on_timeout: bool = ...,
        transport: Transport = ...,
        expected: float | tuple[float, float] | None = ...,
    ) -> Status: ...

    def wait(
        self,
        job_id: str | None = None,
        *,
        timeout: float | None = None,
        on_progress: Callable[[Job], object] | None = None,
        raise_on_error: bool = True,
        cancel_on_timeout: bool = False,
        transport: Transport = "auto",
        expected: float | tuple[float, float] | None = None,
    ) -> Job | Status:
        """Wait until the job finishes and return it; without ``job_id``, wait on ``GET /status``
        and return its :class:`~vtrans.protocol.Status`.

        Raises :class:`JobFailed` if it ends in ``error`` (unless ``raise_on_error=False``) and
        :class:`WaitTimeout` once ``timeout`` seconds pass (after one last poll at the deadline;
        with ``cancel_on_timeout`` the job is cancelled first). ``on_progress`` is called with
        every new state: with it, held polls also end at each ``PollPolicy.progress_step`` of the
        job's progress (``transport="sse"`` streams every percent). ``transport``, ``expected``:
        see :class:`WaitOptions`.
        """
        following = on_progress is not None
        options = WaitOptions(timeout, raise_on_error, cancel_on_timeout, transport, expected, following)
        if job_id is None:
            return self._run(lambda s: waiting.wait_status(s, options), on_progress)
        return self._run(lambda s: waiting.wait(s, job_id, options), on_progress)

    def watch(
        self, job_id: str | None = None, *, timeout: float | None = None, transport: Transport = "auto"
    ) -> Iterator[Job]:
        """Every new state of the job, the terminal one last (failures are yielded, not raised)."""
        options = WaitOptions(timeout, raise_on_error=False, transport=transport, progress=True)
        yield from self._iterate(lambda s: waiting.wait(s, job_id, options), [])

    def events(self, job_id: str, *, timeout: float | None = None) -> Iterator[Job]:
        """The job's Server-Sent Events: its progress, then its terminal state."""
        return self.watch(job_id, timeout=timeout, transport="sse")

    def wait_many(
        self, job_ids: list[str], *, timeout: float | None = None, raise_on_error: bool = False
    ) -> list[Job]:
        """Wait for all the jobs, through one request at a time; return them in the order given."""
        options = WaitOptions(timeout, raise_on_error)
        return self._run(lambda s: waiting.wait_many(s, job_ids, options))

    def as_completed(self, job_ids: list[str], *, timeout: float | None = None) -> Iterator[Job]:
        """Each job as soon as it finishes (failed ones included)."""
        options = WaitOptions(timeout, raise_on_error=False)
        yield from self._iterate(lambda s: waiting.wait_many(s, job_ids, options), [])

    def translate(
        self, language: str, video_seconds: float, *, timeout: float | None = None, **create: Any
    ) -> Job:
        """:meth:`create` then :meth:`wait`: the finished translation, or an error."""
        job = self.create(language, video_seconds, **create)
        assert job.id is not None
        return self.wait(job.id, timeout=timeout)

    # --- the driver ---------------------------------------------------------------------------

    def _iterate(self, make: MakeFlow[T], result: list[T]) -> Iterator[Job]:
        """Run a flow: execute its actions, yield what it emits, put its return value in ``result``."""
        settings = self._settings(self._http)
        flow, clock = make(settings), settings.clock
        events: Iterator[httpx2.ServerSentEvent] = iter(())
        with contextlib.ExitStack() as streams:
            reply: Any = None
            while True:
                try:
                    action = flow.send(reply)
                except StopIteration as stop:
                    result.append(stop.value)
                    return
                reply = None
                if isinstance(action, core.Send):
                    reply = self._send(action)
                elif isinstance(action, core.Sleep):
                    clock.sleep(action.seconds)
                elif isinstance(action, core.Emit):
                    yield action.job
                elif isinstance(action, core.OpenStream):
                    streams.close()
                    reply, events = self._open(action.send, streams)
                else:
                    try:
                        reply = next(events, None)
                    except httpx2.TransportError as exc:
                        reply = exc

    def _run(self, make: MakeFlow[T], on_emit: Callable[[Job], object] | None = None) -> T:
        result: list[T] = []
        for job in self._iterate(make, result):
            if on_emit is not None:
                on_emit(job)
        return result[0]

    def _send(self, send: core.Send) -> httpx2.Response | httpx2.TransportError:
        exchange = prepare(self._http, send, self.headers, self.timeout)
        try:
            with bounded(exchange.deadline):
                return self._http.send(exchange.request)
        except httpx2.TransportError as exc:
            return exc

    def _open(
        self, send: core.Send, streams: contextlib.ExitStack
    ) -> tuple[httpx2.Response | httpx2.TransportError, Iterator[httpx2.ServerSentEvent]]:
        exchange = prepare(self._http, send, self.headers, self.timeout)
        try:
            with bounded(exchange.deadline):
                response = self._http.send(exchange.request, stream=True)
                streams.callback(response.close)
                if not core.is_event_stream(response):
                    response.read()
                    return response, iter(())
            return response, events(response, exchange.deadline)
        except httpx2.TransportError as exc:
            return exc, iter(())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
