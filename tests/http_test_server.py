"""The lifecycle the stand-in servers share: an aiohttp app on 127.0.0.1.

A stand-in keeps its port across `stop` and `start` (a restarted server is found where
it was), records every request, and may be used as an async context manager, or run in
a thread of its own for code that is not async (the browser tests, the benchmark).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import asyncio
from collections.abc import Iterator
import contextlib
import threading
from types import TracebackType
from typing import NamedTuple, Self

from aiohttp import web


class RecordedRequest(NamedTuple):
    """A request the server answered, for assertions."""

    method: str
    path: str
    query: dict[str, str]
    status: int


def first_values(request: web.Request) -> dict[str, str]:
    """Query parameters as Go's ``Query().Get`` and Rust's serde read them: the first."""
    values: dict[str, str] = {}
    for key, value in request.query.items():
        values.setdefault(key, value)
    return values


class HttpTestServer(ABC):
    """An aiohttp server on a free port of 127.0.0.1 that answers through `_handle`."""

    def __init__(self) -> None:
        """Not listening yet: `start` does."""
        self.requests: list[RecordedRequest] = []
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def url(self) -> str:
        """Base URL; the port stays the same across stop and start."""
        if not self._port:
            msg = "the server has not been started"
            raise RuntimeError(msg)
        return f"http://127.0.0.1:{self._port}"

    @abstractmethod
    async def _handle(self, request: web.Request) -> web.Response:
        """Answer one request."""

    async def _recorded(self, request: web.Request) -> web.Response:
        response = await self._handle(request)
        self.requests.append(
            RecordedRequest(
                request.method, request.path, first_values(request), response.status
            )
        )
        return response

    async def start(self) -> None:
        """Listen on 127.0.0.1: a free port the first time, then the same one."""
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._recorded)
        # The write handlers must see the body as sent to report gzip errors
        # themselves. A stop need not wait for requests still in flight.
        runner = web.AppRunner(
            app, auto_decompress=False, access_log=None, shutdown_timeout=1
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if not self._port:
            self._port = runner.addresses[0][1]

    async def stop(self) -> None:
        """Close the listener and every connection; clients get connection refused."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        """Start the server."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.stop()


@contextlib.contextmanager
def running_in_thread[S: HttpTestServer](server: S) -> Iterator[S]:
    """Run `server` in a thread with an event loop of its own, for code that blocks."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="stand-in", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
