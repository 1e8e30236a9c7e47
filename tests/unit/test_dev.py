"""`make run` (permdev/dev.py) and `python -m permcore.keeper` as a newcomer meets them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from permbase.settings import Settings, get_settings
from permcore import keeper as warm
from permdev import dev

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET = "s" * 40


def _make_run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "-m", "permdev.dev"],
        cwd=tmp_path,  # no .env here
        env={
            **keep,
            "PYTHONPATH": str(ROOT),
            "ADMIN_PASSWORD": "x" * 20,
            "JWT_SECRET": SECRET,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"ENVIRONMENT": "production"},
            "make run: ENVIRONMENT='production': Input should be 'dev', 'test' or 'prod'",
        ),
        ({"PORT": "eighty"}, "make run: PORT='eighty' is not a whole number"),
        (
            {"DB_POOL_MAX_SIZE": "0"},
            "make run: DB_POOL_MAX_SIZE='0': Input should be greater than or equal to 1",
        ),
        (
            {"ENVIRONMENT": "prod", "JWT_SECRET": "short"},
            "make run: JWT_SECRET must be at least 32 bytes and not a placeholder when ENVIRONMENT='prod' (got 5 bytes)",
        ),
    ],
)
def test_a_wrong_setting_is_one_line_before_any_server_starts(
    tmp_path: Path, env: dict[str, str], line: str
) -> None:
    # DATABASE_URL points nowhere: had anything touched a database, the error would be another
    done = _make_run(
        tmp_path,
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        REDIS_URL="redis://127.0.0.1:1/0",
        **env,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [line]
    assert done.stdout == ""


def test_what_is_served_is_what_is_printed() -> None:
    dev_settings = Settings(environment="dev")
    prod = Settings(environment="prod", jwt_secret=SECRET)
    prod_with_ide = Settings(environment="prod", jwt_secret=SECRET, graphql_ide=True)
    assert dev._served(dev_settings, "http://h:1").split() == [
        "GraphiQL:",
        "http://h:1/graphql",
    ]
    assert dev._served(prod, "http://h:1").split()[:3] == [
        "GraphQL:",
        "POST",
        "http://h:1/graphql",
    ]
    assert dev._served(prod_with_ide, "http://h:1").split() == [
        "GraphiQL:",
        "http://h:1/graphql",
    ]


@pytest.fixture
def servers_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "dev-servers.json"
    path.write_text(
        json.dumps(
            {
                "database_url": "postgresql://postgres@127.0.0.1:5999/postgres",
                "redis_url": "redis://127.0.0.1:6999/0",
            }
        )
    )
    monkeypatch.setattr(warm, "DEV_SERVERS_FILE", path)
    monkeypatch.chdir(tmp_path)  # no .env
    for name in ("DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def test_warm_uses_the_servers_of_make_run(servers_file: Path) -> None:
    settings = warm._cli_settings()
    assert settings.database_url == "postgresql://postgres@127.0.0.1:5999/postgres"
    assert settings.redis_url == "redis://127.0.0.1:6999/0"


def test_warm_prefers_the_environment(
    servers_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db:5432/app")
    settings = warm._cli_settings()
    assert settings.database_url == "postgresql://app@db:5432/app"
    assert settings.redis_url == "redis://127.0.0.1:6999/0"
    servers_file.unlink()  # `make run` stopped: the usual settings
    get_settings.cache_clear()
    assert warm._cli_settings().redis_url == Settings().redis_url
