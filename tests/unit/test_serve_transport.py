"""The production server's transport (api/serve.py): what the app writes in one
turn of the event loop leaves in one write, in order, before any close."""

from __future__ import annotations

import asyncio
from typing import Any

from api.serve import CoalescingTransport


class Transport:
    """The seam: records what reaches the socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else default


async def test_one_turns_writes_leave_as_one_in_order() -> None:
    raw = Transport()
    t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    t.write(b"{}")
    assert raw.writes == []  # not before the turn ends
    await asyncio.sleep(0)
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    t.write(b"next")  # a later turn: its own write
    await asyncio.sleep(0)
    assert raw.writes[1:] == [b"next"]


async def test_close_sends_what_was_written_first() -> None:
    raw = Transport()
    t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"a")
    t.write(b"b")
    t.close()
    assert raw.writes == [b"ab"] and raw.closed
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert raw.writes == [b"ab"]


async def test_nothing_is_written_to_a_closing_transport() -> None:
    raw = Transport()
    t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"lost")
    raw.closed = True  # the peer went away within the turn
    await asyncio.sleep(0)
    assert raw.writes == []


async def test_everything_else_is_the_transports_own() -> None:
    raw = Transport()
    t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    assert t.get_extra_info("sockname") == ("127.0.0.1", 8000)
    assert not t.is_closing()
