"""Configuration: every knob is an environment variable (case-insensitive) or `.env`.

`get_settings()` is only the default; tests and benchmarks build `Settings(...)` explicitly.
"""

from __future__ import annotations

import os
import socket
import sys
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDERS = {"changethis", "secret", "changeme", ""}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore"
    )

    environment: Literal["dev", "test", "prod"] = "dev"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    redis_url: str = "redis://127.0.0.1:6379/0"

    # PostgreSQL pool and timeouts (seconds)
    db_pool_min_size: int = Field(2, ge=0)
    db_pool_max_size: int = Field(10, ge=1)
    db_connect_timeout_s: float = Field(5.0, gt=0)
    db_acquire_timeout_s: float = Field(2.0, gt=0)
    db_statement_timeout_ms: int = Field(5000, ge=0)

    # Redis: an optimisation only, so timeouts are short and failures are misses.
    # Each Redis call must end within connect + socket timeout (a new connection
    # if needed, then the answer), or it is a failure (permcore/cache.py). The
    # socket timeout is measured on the event loop: under CPU saturation the
    # loop itself lags by tens of ms, so a 50 ms timeout misreads our own lag as a
    # Redis failure (seen in bench/: the breaker opened at 16 concurrent 1000-user
    # pages). 250 ms still bounds a hung Redis; the breaker bounds repeated ones.
    redis_connect_timeout_s: float = Field(0.1, gt=0)
    redis_socket_timeout_s: float = Field(0.25, gt=0)
    redis_max_connections: int = Field(64, ge=1)
    breaker_failure_threshold: int = Field(3, ge=1)
    breaker_cooldown_s: float = Field(5.0, gt=0)

    # Permission cache
    permissions_cache_prefix: str = "permissions:user:"
    # The TTL is the last safety net, for a write that bypasses the change log's
    # triggers: every other change reaches the cache through the change stream
    # (README, "The keeper"; bench/README.md section 10)
    permissions_cache_ttl_s: int = Field(3600, ge=1)
    permissions_cache_ttl_jitter_s: int = Field(300, ge=0)
    # the permission change log (permcore/stream.py): polled at least this often
    # (LISTEN/NOTIFY wakes it sooner); a reader unseen for the retention is
    # forgotten (the log is trimmed below the others' positions); the instance's
    # reader name (a restarted instance resumes where the name stopped)
    change_poll_interval_s: float = Field(1.0, gt=0)
    change_listen: bool = True  # false: polling only
    change_retention_s: float = Field(3600.0, gt=0)
    # a write returns once this instance has applied it, and a read carrying a
    # consistency token waits for that: at most this long (then the write
    # distrusts the cache until it catches up; the read answers from PostgreSQL)
    change_wait_s: float = Field(2.0, gt=0)
    instance_name: str = Field(default_factory=socket.gethostname, min_length=1)
    # worker processes of `python -m api.serve` (the production server): default,
    # the cores this process may run on
    workers: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)), ge=1)
    permissions_cache_enabled: bool = (
        True  # false: every permission read goes to PostgreSQL
    )
    # The keeper (permcore/keeper.py) reloads every active user's entry at start,
    # after a whole-cache flush, and every refresh interval (default: half the
    # TTL), so entries are replaced before they expire. One instance at a time
    # (a Redis lease). Above the user bound it keeps the lowest ids and logs it.
    permissions_cache_keep_warm: bool = True
    permissions_cache_keep_warm_max_users: int = Field(200_000, ge=1)
    permissions_cache_refresh_interval_s: float | None = Field(None, gt=0)
    # "per_user" is the replaced design, kept for bench/ only
    permissions_loader: Literal["batched", "per_user"] = "batched"
    loader_max_batch_size: int = Field(1000, ge=1)

    # Auth
    jwt_secret: SecretStr = SecretStr("")
    jwt_algorithm: Literal["HS256", "HS384", "HS512", "RS256", "ES256", "EdDSA"] = (
        "HS256"
    )
    jwt_private_key_file: str | None = None
    jwt_public_key_file: str | None = None
    jwt_issuer: str = "permgraph"
    jwt_audience: str = "permgraph"
    jwt_leeway_s: int = Field(10, ge=0, le=120)
    access_token_ttl_s: int = Field(900, ge=30)
    refresh_token_ttl_s: int = Field(14 * 24 * 3600, ge=60)
    # Password guessing (permauth/sessions.py; SECURITY.md, "Password guessing and
    # throttling"): no account is ever locked. Each counter lets `*_free` failures
    # through, then each further attempt waits base * 2^k seconds (k = failures
    # beyond the free ones), at most max, after the counter's last failure. A
    # throttled attempt checks no password. Counters: the (account, client
    # address) pair, reset by a success; the address, across accounts (password
    # spraying); the account, across addresses, which holds only addresses that
    # have not logged into it within trust_s (a botnet cannot keep the owner out
    # of an address they use). A counter forgets after reset_s without a failure.
    login_throttle_pair_free: int = Field(5, ge=1)
    login_throttle_address_free: int = Field(50, ge=1)
    login_throttle_account_free: int = Field(100, ge=1)
    login_throttle_base_s: float = Field(1.0, gt=0)
    login_throttle_max_s: float = Field(900.0, gt=0)
    login_throttle_reset_s: float = Field(3600.0, gt=0)
    login_throttle_trust_s: float = Field(30 * 24 * 3600.0, gt=0)

    # GraphQL surface
    graphql_ide: bool | None = None  # None: on in dev/test, off in prod
    max_query_depth: int = Field(8, ge=1)
    max_aliases: int = Field(30, ge=1)
    max_tokens: int = Field(2000, ge=10)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    max_page_size: int = Field(1000, ge=1)
    # Refused with QUERY_TOO_COMPLEX before the work they bound (schema/engine/limits.py):
    # a document's shape before validation, a query's cost before execution
    # (nodes: objects the answer may hold; cost: times a list is resolved)
    max_directives_per_location: int = Field(5, ge=1)
    max_directives: int = Field(50, ge=1)
    max_selections_per_set: int = Field(100, ge=1)
    max_selections: int = Field(500, ge=1)
    max_query_nodes: int = Field(50_000, ge=1)
    max_query_cost: int = Field(2_000, ge=1)
    # the share of each pool (PostgreSQL, Redis) one request may use at once
    request_pool_share: float = Field(0.25, gt=0, le=1)
    # queries whose document validated before skip FastAPI's and Strawberry's
    # HTTP layers (api/lane.py); false: every request takes the full path
    graphql_fast_lane: bool = True
    # FastAPI's native OpenTelemetry (spans, metrics, logs) when a provider is
    # configured; off, permgraph exports Prometheus metrics only, and requests
    # skip FastAPI's per-request provider lookups (~2-5 % of a small query's CPU)
    otel_telemetry: bool = False
    # answers made of permission entries alone, remembered per process and sent
    # again while those entries are unchanged (`ResponseCache`, schema/engine/prepared.py); 0: off
    response_cache_size: int = Field(4096, ge=0)

    # /metrics: with a token, only `Authorization: Bearer <token>` reads it;
    # without one it is served openly except in prod, where it is off (404)
    metrics_token: SecretStr | None = None

    log_level: str = "INFO"
    gc_gen0_threshold: int = Field(50_000, ge=700)

    @property
    def refresh_interval_s(self) -> float:
        return (
            self.permissions_cache_refresh_interval_s
            or self.permissions_cache_ttl_s / 2
        )

    @property
    def ide_enabled(self) -> bool:
        if self.graphql_ide is None:
            return self.environment != "prod"
        return self.graphql_ide

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        if self.jwt_algorithm.startswith("HS"):
            secret = self.jwt_secret.get_secret_value()
            weak = secret.lower() in _PLACEHOLDERS or len(secret.encode()) < 32
            if weak and self.environment != "dev":
                msg = (
                    "JWT_SECRET must be at least 32 bytes and not a placeholder "
                    f"when ENVIRONMENT={self.environment!r} (got {len(secret.encode())} bytes)"
                )
                raise ValueError(msg)
        elif not (self.jwt_private_key_file and self.jwt_public_key_file):
            msg = (
                f"JWT_ALGORITHM={self.jwt_algorithm} needs JWT_PRIVATE_KEY_FILE "
                "and JWT_PUBLIC_KEY_FILE"
            )
            raise ValueError(msg)
        if self.refresh_interval_s >= self.permissions_cache_ttl_s:
            msg = (
                f"PERMISSIONS_CACHE_REFRESH_INTERVAL_S ({self.refresh_interval_s}) must be shorter "
                f"than PERMISSIONS_CACHE_TTL_S ({self.permissions_cache_ttl_s}), or entries expire between passes"
            )
            raise ValueError(msg)
        if self.db_pool_min_size > self.db_pool_max_size:
            msg = (
                f"DB_POOL_MIN_SIZE ({self.db_pool_min_size}) must not exceed "
                f"DB_POOL_MAX_SIZE ({self.db_pool_max_size})"
            )
            raise ValueError(msg)
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_or_exit(program: str) -> Settings:
    """The settings, checked before anything starts: a wrong one ends the
    program with one line per setting, naming it and what it accepts (a secret's
    value is not shown)."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            secret = any(word in name for word in ("SECRET", "PASSWORD", "KEY"))
            shown = "" if secret else f"={error['input']!r}"
            line = f"{name}{shown}: {message}" if name else message
            print(f"{program}: {line}", file=sys.stderr)  # noqa: T201 - the program's output
        raise SystemExit(2) from None


__all__ = ["Settings", "get_settings", "settings_or_exit"]
