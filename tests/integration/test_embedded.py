"""The embedded servers start from a clone in a private (0700) directory.

As root, PostgreSQL runs as `nobody`, which cannot traverse a 0700 directory: a
clone in root's home or under `mktemp -d` hides both the binaries (in the
clone's .venv) and the data directory (the clone's .data/). Without root there
is no other user, and the same tests check that nothing changes.
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from permdev import embedded
from permdev.embedded import EmbeddedPostgres, EmbeddedRedis, reachable


@pytest.fixture
def private_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh 0700 directory holding a 'clone' whose .venv has the PostgreSQL
    binaries, as `git clone` + `make install` under `mktemp -d` leave it."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o700)
    clone = home / "permgraph"
    copy = embedded._copy_install(
        embedded._postgres_bin(), clone / ".venv" / "site-packages"
    )
    monkeypatch.setattr(embedded, "_postgres_bin", lambda: copy)
    return clone


async def test_postgres_starts_from_a_private_directory_and_keeps_its_data(
    private_clone: Path,
) -> None:
    data_dir = private_clone / ".data" / "postgres"
    pg = EmbeddedPostgres(data_dir).start()
    try:
        con = await asyncpg.connect(pg.url)
        await con.execute(
            "create table kept (v text); insert into kept values ('demo')"
        )
        await con.close()
        pg.stop()
        pg = EmbeddedPostgres(data_dir).start()  # `make run` again: same data
        con = await asyncpg.connect(pg.url)
        assert await con.fetchval("select v from kept") == "demo"
        await con.close()
    finally:
        pg.stop()
        if data_dir.is_symlink():  # kept outside the clone: remove it like `make clean`
            shutil.rmtree(data_dir.resolve())
    if os.geteuid() == 0:
        # the files live where nobody can reach them, and the clone points there
        assert data_dir.is_symlink()
        assert reachable(data_dir.resolve(), embedded._run_as())


async def test_throwaway_postgres_and_redis_from_a_private_directory_leave_nothing(
    private_clone: Path,
) -> None:
    base = private_clone / "tmp"
    pg = EmbeddedPostgres(base / "postgres", durable=False).start()
    rd = EmbeddedRedis(base / "redis").start()
    target = pg.run_dir
    try:
        con = await asyncpg.connect(pg.url)
        assert await con.fetchval("select 1") == 1
        await con.close()
        client = aioredis.from_url(rd.url)
        assert await client.ping()
        await client.aclose()
    finally:
        pg.stop()
        rd.stop()
    assert not target.exists()


def test_reachable_reads_the_traverse_bit_of_every_parent(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    ids = {"user": nobody.pw_uid, "group": nobody.pw_gid}
    open_dir = tmp_path / "open" / "a"
    open_dir.mkdir(parents=True)
    private = tmp_path / "private" / "a"
    private.mkdir(parents=True)
    for path in (tmp_path, tmp_path / "open", open_dir, private):
        path.chmod(0o755)
    (tmp_path / "private").chmod(0o700)
    parents_open = all(p.stat().st_mode & 0o001 for p in tmp_path.parents)
    assert reachable(open_dir, ids) is parents_open
    assert reachable(private, ids) is False
    assert reachable(private, {}) is True  # no user dropped: nothing to check
