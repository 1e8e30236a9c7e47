"""The production server with several worker processes (`python -m api.serve`),
as deployed: real processes on a real port, one database and one Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from permbase.settings import Settings
from permdev.embedded import free_port
from tests.conftest import JWT_SECRET
from tests.factories import token_for

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def serving(settings: Settings, workers: int) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "JWT_SECRET": JWT_SECRET,
        "LOG_LEVEL": "WARNING",
        "PERMISSIONS_CACHE_KEEP_WARM": "true",
        "CHANGE_LISTEN": "false",
        "INSTANCE_NAME": "test-serve",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [
            sys.executable,
            *("-m", "api.serve", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers", str(workers)),
        ],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "the server exited"
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "not ready in time"
            time.sleep(0.1)
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def samples(text: str) -> dict[str, float]:
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.labels
    }


async def test_two_workers_serve_with_one_keeper_pass_and_whole_metrics(
    settings: Settings,
) -> None:
    token = token_for(1, settings)
    with serving(settings, workers=2) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            # one keeper pass at start across both workers (the lease)
            deadline = time.monotonic() + 20
            while True:
                seen = samples((await client.get("/metrics")).text)
                if seen.get("permissions_cache_refresh_seconds_count", 0) >= 1:
                    break
                assert time.monotonic() < deadline, "no keeper pass"
                await asyncio.sleep(0.2)
            before = samples((await client.get("/metrics")).text)
            entries = before.get("permissions_cache_hits_total", 0) + before.get(
                "permissions_cache_misses_total", 0
            )
            headers = {"Authorization": f"Bearer {token}"}
            body = {"query": "{ me { email permissions } }"}
            # new connections, several at once: the kernel spreads them over
            # both workers; each request reads one entry (the caller's)
            responses = await asyncio.gather(
                *(
                    httpx.AsyncClient(base_url=url, timeout=10).post(
                        "/graphql", json=body, headers=headers
                    )
                    for _ in range(40)
                )
            )
            assert all(r.status_code == 200 for r in responses)
            assert all(
                r.json()["data"]["me"]["email"] == "admin@permgraph.local"
                for r in responses
            )
            after = samples((await client.get("/metrics")).text)
    # /metrics is the whole server, whichever worker answered the scrape
    read = (
        after.get("permissions_cache_hits_total", 0)
        + after.get("permissions_cache_misses_total", 0)
        - entries
    )
    assert read == 40
    assert after["permissions_cache_refresh_seconds_count"] == 1


async def _exchange(url: str, raw: bytes) -> tuple[list[tuple[bytes, bytes]], bool]:
    """Sends `raw` on one connection; the responses read back (head, body), and
    whether the server then closed the connection."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    await writer.drain()
    responses = []
    closed = False
    try:
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            except asyncio.IncompleteReadError as exc:
                closed = exc.partial == b""
                break
            except TimeoutError:
                break
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            responses.append((head, await reader.readexactly(length)))
    finally:
        writer.close()
    return responses, closed


async def test_responses_on_one_connection_arrive_whole_and_in_order(
    settings: Settings,
) -> None:
    """api/serve.py holds a turn's writes and sends them as one: whatever it
    holds, pipelined requests on a kept-alive connection get whole answers in
    order, and a request that asks to close gets its whole answer before the
    connection ends. (That an answer leaves in one write is the unit tests'
    and strace's business: tests/unit/test_serve_transport.py.)"""
    token = token_for(1, settings)

    def post(query: str, *, close: bool = False) -> bytes:
        body = ('{"query": "%s"}' % query).encode()
        return (
            b"POST /graphql HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + (b"Connection: close\r\n" if close else b"")
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    with serving(settings, workers=1) as url:
        queries = ["{ me { id } }", "{ me { email } }", "{ permissions { code } }"] * 3
        responses, closed = await _exchange(
            url, b"".join(post(q) for q in queries) + post("{ me { id } }", close=True)
        )
        assert closed
        assert [h.split(b"\r\n", 1)[0] for h, _ in responses] == [
            b"HTTP/1.1 200 OK"
        ] * 10
        # nor does it name its software
        assert not any(b"\r\nserver:" in h.lower() for h, _ in responses)
        answers = [json.loads(b)["data"] for _, b in responses]
        assert answers[0] == {"me": {"id": "1"}} == answers[-1]
        assert answers[1] == {"me": {"email": "admin@permgraph.local"}}
        assert len(answers[2]["permissions"]) > 0
        assert answers[3:9] == answers[0:3] * 2
