"""The production server's transport (api/serve.py): what the app writes in one
turn of the event loop leaves in one write, in order, before any close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.serve import CoalescingTransport


class Transport:
    """The seam: records what reaches the socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False
        self.eof = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def write_eof(self) -> None:
        self.eof = True

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


async def test_a_large_write_leaves_at_once_after_what_was_held() -> None:
    """So that a big or streamed body meets the socket's backpressure when it
    is written, not at the end of the turn."""
    raw = Transport()
    t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    big = b"x" * (CoalescingTransport.HOLD_BYTES + 1)
    t.write(b"head")
    t.write(big)
    assert raw.writes == [b"head", big]  # in order, before the turn ends
    t.write(b"tail")
    await asyncio.sleep(0)
    assert raw.writes == [b"head", big, b"tail"]
    chunks = [b"c" * 6000] * 3  # together over the bound: each leaves in time
    for chunk in chunks:
        t.write(chunk)
    assert b"".join(raw.writes[3:]) + b"".join(t._pending or []) == b"".join(chunks)
    assert sum(map(len, t._pending or [])) <= CoalescingTransport.HOLD_BYTES


async def test_writelines_eof_abort_and_bad_data() -> None:
    raw = Transport()
    t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.writelines([b"a", b"b"])
    t.write(b"c")
    t.write_eof()  # what was held goes before the end of the stream
    assert raw.writes == [b"abc"] and raw.eof
    t.write(b"dropped")
    t.abort()
    await asyncio.sleep(0)
    assert raw.writes == [b"abc"] and raw.aborted
    with pytest.raises(TypeError):
        t.write("text")  # type: ignore[arg-type]


async def test_close_closes_even_when_the_last_write_fails() -> None:
    class Failing(Transport):
        def write(self, data: bytes) -> None:
            raise ConnectionResetError

    raw = Failing()
    t = CoalescingTransport(raw, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"a")
    with pytest.raises(ConnectionResetError):
        t.close()
    assert raw.closed
