"""permgraph beside PostGraphile, on one core and on the whole machine (issue 15, item 3).

    .venv/bin/python bench/peer.py [--workers N] [--phases single,whole]
        [--queries q1,q2,q3] [--conc 1,8,32] [--rounds 1] [-d 10]
        [--readme bench/README.md] [--no-write]
        [--peer-bench DIR] [--peer-workdir /tmp/permgraph-peer]

Starts its own PostgreSQL and Redis, a migrated benchmark database and permgraph
as it is deployed (`python -m api.serve --workers W`, ENVIRONMENT=prod), mints
an access token for user 4, and runs ../shared/peer-bench/side_by_side.sh
against it: that driver loads the peer's seed into the database, starts
PostGraphile, alternates wrk runs and checks every response of both sides
against PostGraphile's answer. Phases:

- single: 1 worker against one Node process;
- whole: N workers (default: every core) against `--cluster-workers N`.

Q1 and Q2 are the driver's (../shared/peer-bench/README.md). Q3, a page of 50
users with `email displayName createdAt`, is on no fast path and the driver
knows only Q1 and Q2, so it is measured on permgraph alone after each phase,
with the same wrk settings and every distinct body checked: compare it across
commits, not with the peer.

The tables replace what is between `<!-- peer.py:begin -->` and
`<!-- peer.py:end -->` in --readme (without the markers they are only printed);
`--no-write` only prints. Exits 1 when a side answered wrongly. The driver's
own tables and raw runs stay in the temporary directory printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.permissions import JWT_SECRET, Server, drop, prepare  # noqa: E402
from permauth.tokens import TokenService  # noqa: E402
from permbase.settings import Settings  # noqa: E402
from permdev.embedded import services  # noqa: E402

QUERIES = {
    "q1": "{ users(first: 100) { edges { node { id email roles { name } permissions } } } }",
    "q2": "{ user(id: 42) { id permissions } }",
    "q3": "{ users(first: 50) { edges { node { email displayName createdAt } } } }",
}
BEGIN, END = "<!-- peer.py:begin -->", "<!-- peer.py:end -->"
WARMUP_S = 2  # side_by_side.py's --warmup
Record = dict[str, Any]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--phases", default="single,whole")
    parser.add_argument("--queries", default="q1,q2,q3")
    parser.add_argument("--conc", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("-d", "--duration", type=int, default=10)
    parser.add_argument("--readme", type=Path, default=ROOT / "bench" / "README.md")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--peer-bench", type=Path, default=ROOT.parent / "shared" / "peer-bench"
    )
    parser.add_argument(
        "--peer-workdir",
        type=Path,
        default=Path("/tmp/permgraph-peer"),  # noqa: S108 - node_modules kept there
    )
    args = parser.parse_args()
    args.phases = args.phases.split(",")
    args.queries = args.queries.split(",")
    if not set(args.phases) <= {"single", "whole"}:
        parser.error(f"--phases: single and/or whole, not {args.phases}")
    if not set(args.queries) <= set(QUERIES) or not {"q1", "q2"} & set(args.queries):
        parser.error(f"--queries: q1 and/or q2, and q3 if wanted, not {args.queries}")
    return args


def git(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True)


# -- permgraph, the production way ---------------------------------------------


@contextmanager
def serving(
    settings: Settings, workers: int, *, cwd: Path = ROOT
) -> Iterator[tuple[str, int]]:
    """`python -m api.serve` with bench.permissions.Server's environment, run from
    `cwd` (a checkout: bench/ab.py); its URL and the supervisor's pid."""
    spec = Server(
        settings,
        **{
            k: v for k, v in os.environ.items() if k.startswith(("PERMISSIONS_", "GC_"))
        },
    )
    argv = ["--host", "127.0.0.1", "--port", str(spec.port), "--workers", str(workers)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.serve", *argv],
        cwd=cwd,
        env=spec.env,
        start_new_session=True,
    )
    try:
        # the workers share one socket: ask until every one has likely answered
        ready, deadline = 0, time.monotonic() + 60
        while ready < 3 * workers:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"permgraph did not become ready (rc {proc.poll()})")
            try:
                ok = httpx.get(f"{spec.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                ok = False
            ready = ready + 1 if ok else 0
            time.sleep(0.2)
        yield spec.url, proc.pid
    finally:
        stop_group(proc, signal.SIGTERM, 30)
        with suppress(ProcessLookupError):  # a worker the supervisor left behind
            os.killpg(proc.pid, signal.SIGKILL)


def stop_group(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> bool:
    """Send `sig` to the process group; SIGKILL it after `timeout` seconds.
    True when it had to be killed."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True
    return False


# -- Q1 and Q2: the driver ------------------------------------------------------


def side_by_side(
    args: argparse.Namespace,
    url: str,
    settings: Settings,
    token: str,
    workers: int,
    whole: bool,
    tmp: Path,
) -> Path:
    """Run side_by_side.sh; its results.jsonl (exit 3, a wrong answer, included)."""
    workdir = tmp / f"sbs-w{workers}"
    sha = git("rev-parse", "--short", "HEAD").stdout.strip()
    cmd = [
        str(args.peer_bench / "side_by_side.sh"),
        *("--url", f"{url}/graphql", "--dsn", settings.database_url),
        *("--redis", settings.redis_url, "--auth", f"Bearer {token}"),
        *("--q1", str(tmp / "q1.graphql"), "--q2", str(tmp / "q2.graphql")),
        *("--loader-arg", "--cascade", "--label", f"permgraph-{sha}-w{workers}"),
        *("--queries", ",".join(q for q in args.queries if q != "q3")),
        *("--conc", args.conc, "--rounds", str(args.rounds), "-d", str(args.duration)),
        *("--workdir", str(workdir), "--peer-workdir", str(args.peer_workdir)),
    ]
    env = {k: v for k, v in os.environ.items() if k != "PGL_EXTRA_ARGS"}
    if whole:
        env["PGL_EXTRA_ARGS"] = f"--cluster-workers {workers}"
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        rc = proc.wait()
    except BaseException:
        # Ctrl-C for its group: wrk and side_by_side.py stop, its EXIT trap stops the peer
        if stop_group(proc, signal.SIGINT, 60):  # the trap did not run: stop it here
            stop = args.peer_bench / "peer" / "stop.sh"
            subprocess.run([str(stop), str(args.peer_workdir)], check=False)
        raise
    results = next(workdir.glob("*/results.jsonl"), None)
    if rc not in (0, 3) or results is None:
        raise RuntimeError(f"side_by_side.sh exited with {rc} (its output is above)")
    return results


def fnum(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def peer_table(results: Path) -> tuple[list[str], list[str]]:
    """Markdown lines for one side_by_side.py run (warm cache), and its failures."""
    records = [json.loads(line) for line in results.read_text().splitlines() if line]
    meta = next(r for r in records if r.get("kind") == "meta")["args"]
    runs = [r for r in records if "rps" in r and r["mode"] == "warm"]
    counts = {
        (r["side"], r["query"]): r
        for r in records
        if r.get("kind") == "per_request_counts" and r["mode"] == "warm"
    }
    lines = [
        "| query | c | permgraph req/s | PostGraphile req/s | ratio | p99 ms pg / PGL"
        " | pg cores | SQL/req pg / PGL | Redis/req pg | checked |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for q, c in dict.fromkeys((r["query"], r["c"]) for r in runs):
        side: dict[str, list[Record]] = {
            s: [r for r in runs if (r["side"], r["query"], r["c"]) == (s, q, c)]
            for s in ("permgraph", "peer")
        }
        rps = {
            s: statistics.mean(r["rps"] for r in rs) if rs else None
            for s, rs in side.items()
        }
        p99 = {
            s: statistics.median(r["p99_ms"] for r in rs) if rs else None
            for s, rs in side.items()
        }
        flags = [
            f"FAIL {s}"
            for s, rs in side.items()
            if not rs
            or any(r["check"]["problems"] for r in rs)
            or (counts.get((s, q)) or {}).get("problems")
        ]
        ok = sum(r["check"]["verified_ok"] for rs in side.values() for r in rs)
        unverified = sum(r["check"]["unverified"] for rs in side.values() for r in rs)
        if unverified:
            flags.append(f"{unverified:,} unverified")
        if any(
            r["foreign_cores"] > meta["max_foreign"] for rs in side.values() for r in rs
        ):
            flags.append("noisy")
        for s, rs in side.items():
            spread = [r["rps"] for r in rs]
            if (
                len(spread) > 1
                and (max(spread) - min(spread)) / statistics.mean(spread)
                > meta["max_spread"]
            ):
                flags.append(f"{s} unstable")
        for r in side["permgraph"]:
            w = r.get("worker_cores") or []
            if len(w) > 1 and w[0] > 0.3 and w[-1] < 0.25 * w[0]:
                flags.append(f"uneven workers ({' / '.join(map(str, w))})")
        flags += sorted(
            {w for rs in side.values() for r in rs for w in r["check"]["warnings"]}
        )
        ratio = (
            f"**{rps['permgraph'] / rps['peer']:.2f}**"
            if rps["permgraph"]
            and rps["peer"]
            and not any(f.startswith("FAIL") for f in flags)
            else "-"
        )
        cores = [r["cpu_cores"].get("server", 0.0) for r in side["permgraph"]]
        mine, theirs = counts.get(("permgraph", q)) or {}, counts.get(("peer", q)) or {}
        lines.append(
            f"| {q.upper()} | {c} | {fnum(rps['permgraph'])} | {fnum(rps['peer'])} | {ratio}"
            f" | {fnum(p99['permgraph'], 1)} / {fnum(p99['peer'], 1)}"
            f" | {fnum(statistics.mean(cores) if cores else None, 2)}"
            f" | {fnum(mine.get('sql_per_req'), 2)} / {fnum(theirs.get('sql_per_req'), 2)}"
            f" | {fnum(mine.get('redis_per_req'), 2)}"
            f" | {'; '.join(flags) if flags else f'all {ok:,} ok'} |"
        )
    table = results.parent / "table.md"
    text = table.read_text() if table.exists() else ""
    failures = text.partition("### FAILURES")[2].partition("\nNotes:")[0]
    return lines, [ln[2:] for ln in failures.splitlines() if ln.startswith("- ")]


# -- Q3: permgraph alone --------------------------------------------------------


def q3_problem(body: bytes) -> str:
    """'' when `body` is a page of 50 users with the three fields."""
    try:
        doc = json.loads(body)
        nodes = [edge["node"] for edge in doc["data"]["users"]["edges"]]
    except (ValueError, KeyError, TypeError):
        return f"not a page of users: {body[:200]!r}"
    if "errors" in doc:
        return f"errors: {body[:200]!r}"
    if len(nodes) != 50:
        return f"{len(nodes)} users, not 50"
    fields = ("email", "displayName", "createdAt")
    if any(n.get(f) is None for n in nodes for f in fields):
        return f"a user without {', '.join(fields)}"
    return ""


def wrk(
    url: str, token: str, body: Path, c: int, seconds: int, lua: Path, out: Path
) -> Record:
    """One wrk run through the driver's verify.lua; every distinct body checked."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    proc = subprocess.run(
        [
            *("wrk", "-t1", f"-c{c}", f"-d{seconds}s", "--timeout", "10s"),
            *("-s", str(lua), f"{url}/graphql", "--", str(body), str(out)),
            f"Bearer {token}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    line = next(
        (ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None
    )
    if line is None:
        raise RuntimeError(f"wrk failed (rc {proc.returncode}): {proc.stderr[:400]}")
    run: Record = json.loads(line.removeprefix("WRKJSON "))
    run["problems"], run["ok"] = [], 0
    for entry in (out / "manifest.tsv").read_text().splitlines():
        count, name = entry.split("\t")
        problem = q3_problem((out / name).read_bytes())
        if problem:
            run["problems"].append(f"{count} responses: {problem}")
        else:
            run["ok"] += int(count)
    if run["non200"]:
        run["problems"].append(
            f"{run['non200']} non-200 (first: {run['first_non200'][:200]})"
        )
    if run["socket_errors"] or run["overflow_errors"]:
        run["problems"].append(
            f"{run['socket_errors']} socket errors, {run['overflow_errors']} with errors"
        )
    return run


def measure_q3(
    args: argparse.Namespace, url: str, token: str, workers: int, tmp: Path
) -> tuple[list[str], list[str]]:
    lua, body = args.peer_bench / "sbs" / "verify.lua", tmp / "q3.json"
    rows, failures = [], []
    for c in map(int, args.conc.split(",")):
        wrk(url, token, body, c, WARMUP_S, lua, tmp / "q3")
        runs = [
            wrk(url, token, body, c, args.duration, lua, tmp / "q3")
            for _ in range(args.rounds)
        ]
        problems = [p for r in runs for p in r["problems"]]
        unverified = sum(r["overflow"] - r["overflow_errors"] for r in runs)
        checked = f"all {sum(r['ok'] for r in runs):,} ok" + (
            f", {unverified:,} unverified" if unverified else ""
        )
        print(
            f"== Q3 w{workers} c={c}: {runs[-1]['rps']:.0f} req/s, {problems[0] if problems else checked}",
            flush=True,
        )
        failures += [f"Q3 w{workers} c={c}: {p}" for p in problems]
        rows.append(
            f"| {workers} | {c} | {fnum(statistics.mean(r['rps'] for r in runs))}"
            f" | {fnum(statistics.median(r['p99_ms'] for r in runs), 1)}"
            f" | {'FAIL' if problems else checked} |"
        )
    return rows, failures


# -- the report -----------------------------------------------------------------


def write_block(readme: Path, block: str) -> bool:
    text = readme.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return False
    readme.write_text(f"{text[: start + len(BEGIN)]}\n{block}\n{text[end:]}")
    return True


def main() -> int:
    args = parse_args()
    started, now = time.monotonic(), datetime.now(UTC)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    tmp = Path(tempfile.mkdtemp(prefix="permgraph-peer-run-"))
    for q in ("q1", "q2"):
        (tmp / f"{q}.graphql").write_text(QUERIES[q] + "\n")
    (tmp / "q3.json").write_text(json.dumps({"query": QUERIES["q3"]}))
    sections: list[str] = []
    q3_rows: list[str] = []
    failures: list[str] = []
    with services() as (admin_db, redis_url):
        db_url = asyncio.run(prepare(admin_db))
        try:
            settings = Settings(
                environment="test",
                database_url=db_url,
                redis_url=redis_url,
                jwt_secret=JWT_SECRET,
                # to mint a token that outlives the run (the server checks exp only)
                access_token_ttl_s=24 * 3600,
            )
            token = TokenService(settings).issue(4, "access").token
            for phase in args.phases:
                workers = 1 if phase == "single" else args.workers
                print(
                    f"== phase {phase}: permgraph with {workers} worker(s)", flush=True
                )
                with serving(settings, workers) as (url, _):
                    results = side_by_side(
                        args, url, settings, token, workers, phase == "whole", tmp
                    )
                    if "q3" in args.queries:
                        rows, failed = measure_q3(args, url, token, workers, tmp)
                        q3_rows += rows
                        failures += failed
                lines, failed = peer_table(results)
                failures += [f"{phase}: {f}" for f in failed]
                title = (
                    "1 worker vs one PostGraphile process"
                    if phase == "single"
                    else f"{workers} workers vs PostGraphile `--cluster-workers {workers}`"
                )
                sections += [f"**{title}**", "", *lines, ""]
        finally:
            asyncio.run(drop(admin_db, db_url))
    dirty = (
        " (uncommitted changes)" if git("diff", "--quiet", "HEAD").returncode else ""
    )
    command = shlex.join(["python", "bench/peer.py", *sys.argv[1:]])
    block = [
        f"Commit {git('rev-parse', '--short', 'HEAD').stdout.strip()}{dirty},"
        f" {now:%Y-%m-%d %H:%M} UTC, load {load} ({os.cpu_count()} cores),"
        f" {(time.monotonic() - started) / 60:.0f} min: `{command}`",
        "",
        "Warm cache. req/s: mean of the rounds; p99: median; pg cores: CPU of"
        " permgraph's server processes; SQL and Redis per request: exact, over 50"
        " sequential requests; checked: every response of both sides against"
        " PostGraphile's answer.",
        "",
        *sections,
    ]
    if q3_rows:
        block += [
            f"**Q3, permgraph alone** (compare across commits): `{QUERIES['q3']}`",
            "",
            "| workers | c | req/s | p99 ms | checked |",
            "|---:|---:|---:|---:|---|",
            *q3_rows,
        ]
    text = "\n".join(block).rstrip()
    print(f"\n{text}\n")
    if not args.no_write:
        if write_block(args.readme, text):
            print(f"written to {args.readme}")
        else:
            print(f"{args.readme} has no {BEGIN} ... {END}: not written")
    print(f"the driver's tables and raw runs: {tmp}")
    if failures:
        print("\nFAILURES:", *failures, sep="\n- ")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
