"""The production server: `python -m api.serve [--host H] [--port P] [--workers N]`.

uvicorn runs the app in WORKERS processes (default: the cores this process may
run on), so that one Python process is no longer the ceiling (bench/README.md).
Each worker is a whole instance of the app: its own pools, its own change
stream (permcore/stream.py: one reader name per host, applied to the shared
Redis) and keeper (one pass per interval across all of them: a Redis lease).
Before the workers start, PROMETHEUS_MULTIPROC_DIR is set to a fresh directory,
so that `/metrics` adds up every worker's values (permbase/metrics.py).
Settings are checked first: a wrong one ends it with one line naming it.

Each response leaves in one write (`CoalescingHttpTools`): uvicorn writes the
status line and headers when the app sends `http.response.start` and the body
when it sends `http.response.body`, two `send` system calls and two TCP
segments for every small answer. One write instead: ~9 % less CPU per request
on one user's permissions (bench/README.md, section 13).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from permbase.settings import settings_or_exit


class CoalescingTransport:
    """A transport that holds small writes until the end of the event loop's
    turn and sends what one turn wrote in one write. A write that would hold
    more than HOLD_BYTES goes out at once, with what was held before it, so
    that a large or streamed body meets the socket's backpressure
    (`pause_writing`) as it would without this layer. Everything else is the
    transport's own; closing sends what is held first."""

    HOLD_BYTES = 16 * 1024

    __slots__ = ("_held", "_loop", "_pending", "_transport")

    def __init__(
        self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._held = 0

    def write(self, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            # raised here, where the app wrote, as the transport itself would
            raise TypeError(f"data: expected bytes, got {type(data).__name__}")
        if self._held + len(data) > self.HOLD_BYTES:
            self._flush()
            self._transport.write(data)
        elif self._pending is None:
            self._pending = [bytes(data)]
            self._held = len(data)
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(bytes(data))
            self._held += len(data)

    def writelines(self, lines: list[bytes]) -> None:
        self.write(b"".join(lines))

    def _flush(self) -> None:
        pending, self._pending, self._held = self._pending, None, 0
        if pending and not self._transport.is_closing():
            self._transport.write(
                pending[0] if len(pending) == 1 else b"".join(pending)
            )

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        try:
            self._flush()  # what was written goes out before the FIN
        finally:
            self._transport.close()

    def abort(self) -> None:
        self._pending, self._held = None, 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol over a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]  # a transport by delegation


def main(argv: list[str] | None = None) -> None:
    settings = settings_or_exit("permgraph")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server in a container
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=settings.workers)
    args = parser.parse_args(argv)
    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="permgraph-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "api.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            http=CoalescingHttpTools,
            proxy_headers=True,
            server_header=False,  # no `server: uvicorn`: the software is nobody's business
            access_log=False,
            log_level="warning",
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


__all__ = ["CoalescingHttpTools", "CoalescingTransport", "main"]


if __name__ == "__main__":
    main()
