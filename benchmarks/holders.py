"""Long-polls held open from child processes: one process may not open more files than its
open-files limit (20,000 on this machine kind, and it cannot be raised), so 20,000 held
connections need two. Each child opens one raw keep-alive connection per job in bursts, sends
``GET /v1/jobs/{id}`` with ``Prefer: wait=N`` on each, reports its local ports, and holds them
until told to stop; then it reports how many were answered meanwhile (none should be).

The parent side is :class:`Holders`; a child is this file run as a script, which reads its orders
(one JSON line) from stdin.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from machine import raise_nofile
from rawhttp import RawConnection, Reply, connect, long_poll

try:
    import uvloop
except ImportError:  # pragma: no cover - the service itself needs it (uvicorn[standard])
    uvloop = None  # type: ignore[assignment]


SCRIPT = str(Path(__file__).resolve())


class Holders:
    """``ids`` long-polled on ``port`` from ``processes`` children, ``burst`` new connections per
    child every ``every`` seconds, each held up to ``hold`` seconds."""

    def __init__(
        self, port: int, ids: Sequence[str], hold: int, processes: int, burst: int, every: float
    ) -> None:
        self.port, self.hold, self.burst, self.every = port, hold, burst, every
        share = math.ceil(len(ids) / processes)
        self.shares = [list(ids[i : i + share]) for i in range(0, len(ids), share)]
        self.children: list[asyncio.subprocess.Process] = []

    async def open(self) -> list[int]:
        """Start the children; return the local ports of all their connections once every
        request is sent."""
        for share in self.shares:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                SCRIPT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 24,  # a report line lists up to 20,000 ports
            )
            self.children.append(child)
            orders = {"port": self.port, "ids": share, "hold": self.hold, "burst": self.burst}
            assert child.stdin is not None
            child.stdin.write(json.dumps({**orders, "every": self.every}).encode() + b"\n")
            await child.stdin.drain()
        ports: list[int] = []
        for report in await asyncio.gather(*(self._report(child) for child in self.children)):
            ports += report["ports"]
        return ports

    async def close(self) -> tuple[int, list[str]]:
        """Stop the children (they reset their connections); return how many long-polls were
        answered while held, and the first errors."""
        early, errors = 0, []
        for child in self.children:
            assert child.stdin is not None
            child.stdin.write(b"stop\n")
            await child.stdin.drain()
        for child in self.children:
            report = await self._report(child)
            early += report["early"]
            errors += report["errors"]
            await asyncio.wait_for(child.wait(), 30)
        self.children = []
        return early, errors

    def kill(self) -> None:
        for child in self.children:
            if child.returncode is None:
                child.kill()

    @staticmethod
    async def _report(child: asyncio.subprocess.Process) -> dict[str, Any]:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 300)
        if not line:
            raise RuntimeError(f"a holder process exited ({await child.wait()}) without reporting")
        report: dict[str, Any] = json.loads(line)
        return report


async def _hold(orders: dict[str, Any]) -> None:
    """A child: open, send, report the ports; on ``stop``, report what was answered, and reset."""
    ids: list[str] = orders["ids"]
    burst: int = orders["burst"]
    conns: list[RawConnection] = []
    answers: list[asyncio.Future[Reply]] = []
    try:
        for start in range(0, len(ids), burst):
            chunk = ids[start : start + burst]
            opened = await asyncio.gather(*(connect(orders["port"]) for _ in chunk))
            answers += [
                c.send(long_poll(job_id, orders["hold"])) for c, job_id in zip(opened, chunk, strict=True)
            ]
            conns += opened
            if start + burst < len(ids):
                await asyncio.sleep(orders["every"])
        print(json.dumps({"ports": [c.local_port for c in conns]}), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)
        done = [a for a in answers if a.done()]
        errors = [repr(a.exception()) for a in done if not a.cancelled() and a.exception() is not None]
        print(json.dumps({"early": len(done), "errors": errors[:5]}), flush=True)
    finally:
        for conn in conns:
            conn.abort()


def main() -> None:
    raise_nofile()
    orders = json.loads(sys.stdin.readline())
    if uvloop is not None:
        uvloop.run(_hold(orders))
    else:
        asyncio.run(_hold(orders))


if __name__ == "__main__":
    main()
