"""Two versions of permgraph side by side: CPU per request and req/s, A/B/A/B.

    .venv/bin/python bench/ab.py [--base REV] [--query q2|q1|'<document>']
        [-c 8] [-d 6] [--rounds 5]

A (the base, default HEAD) is checked out into a temporary git worktree; B is
this working tree, uncommitted changes included. Both run as deployed
(`python -m api.serve --workers 1`, the production profile) on one PostgreSQL
database and one Redis (own servers, 10,000 users seeded with this tree's
migrations), with one access token. Each round loads A then B (the order
alternates between rounds) with wrk for `-d` seconds after a 2 s warm-up, and
reads the server's CPU time (its process group's, from /proc) around the
timed run. Printed: per round and side, req/s and microseconds of server CPU
per request; then the medians and B/A. CPU per request is the number to quote:
req/s moves with whatever else the shared machine runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peer import QUERIES, serving  # noqa: E402
from bench.permissions import (  # noqa: E402
    bench_settings,
    drop,
    login,
    lua_escape,
    prepare,
    wrk,
)
from permdev.embedded import services  # noqa: E402

PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def cpu_seconds(group: int) -> float:
    """User + system CPU of the processes of a process group (alive now): the
    server's supervisor and its workers (bench/peer.py starts it in its own
    session)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[2]) == group:  # pgrp
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="permgraph-ab-") as tmp:
        path = Path(tmp) / "a"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(path), rev],
            cwd=ROOT,
            check=True,
        )
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(path)],
                cwd=ROOT,
                check=False,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="HEAD")
    parser.add_argument("--query", default="q2")
    parser.add_argument("-c", "--connections", type=int, default=8)
    parser.add_argument("-d", "--duration", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="record each side with py-spy during the last round: DIR/A.txt, B.txt "
        "(collapsed stacks)",
    )
    args = parser.parse_args()
    query = QUERIES.get(args.query, args.query)
    body = orjson.dumps({"query": query}).decode()
    script = f"wrk.body = '{lua_escape(body)}'"
    with services() as (admin_db, redis_url), ExitStack() as stack:
        url = asyncio.run(prepare(admin_db))
        stack.callback(lambda: asyncio.run(drop(admin_db, url)))
        settings = bench_settings(url, redis_url)
        base = stack.enter_context(worktree(args.base))
        sides = {
            "A": stack.enter_context(serving(settings, 1, cwd=base)),
            "B": stack.enter_context(serving(settings, 1)),
        }
        token = login(sides["B"][0])
        results: dict[str, list[tuple[float, float]]] = {"A": [], "B": []}
        for round_ in range(args.rounds):
            for side in ("A", "B") if round_ % 2 == 0 else ("B", "A"):
                server, pid = sides[side]
                wrk(server, token, script, args.connections, 2)  # warm-up
                spy = None
                if args.py_spy and round_ == args.rounds - 1:
                    args.py_spy.mkdir(parents=True, exist_ok=True)
                    spy = subprocess.Popen(
                        [
                            *(PY_SPY, "record", "--subprocesses", "--nonblocking"),
                            *("-r", "200", "-d", str(args.duration), "-f", "raw"),
                            *("-o", str(args.py_spy / f"{side}.txt")),
                            *("--pid", str(pid)),
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                before = cpu_seconds(pid)
                run = wrk(server, token, script, args.connections, args.duration)
                used = cpu_seconds(pid) - before
                if spy is not None:
                    spy.wait()
                if run["errors"]:
                    raise SystemExit(f"{side}: {run['errors']} errors")
                us = used / run["requests"] * 1e6
                results[side].append((run["rps"], us))
                print(
                    f"round {round_ + 1} {side}: {run['rps']:,.0f} req/s, "
                    f"{us:.1f} us CPU/request",
                    flush=True,
                )
        rev = subprocess.run(
            ["git", "rev-parse", "--short", args.base],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(f"\n{args.query} -c{args.connections}, {args.rounds} x {args.duration} s")
        medians = {}
        for side, rows in results.items():
            rps = statistics.median(r for r, _ in rows)
            us = statistics.median(u for _, u in rows)
            medians[side] = (rps, us)
            label = f"A ({rev})" if side == "A" else "B (working tree)"
            print(f"{label}: median {rps:,.0f} req/s, {us:.1f} us CPU/request")
        (ra, ua), (rb, ub) = medians["A"], medians["B"]
        print(f"B/A: req/s {rb / ra:.3f}x, CPU/request {ub / ua:.3f}x")


if __name__ == "__main__":
    main()
