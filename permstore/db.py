"""The PostgreSQL pool and the SQL files under `sql/`.

One pool per process; a read runs `pool.fetch(...)`, a write takes one connection
and one transaction. Every statement lives in a `.sql` file loaded by `read_sql`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import asyncpg

from permbase.errors import InvalidInput, ServiceBusy, ServiceUnavailable
from permbase.metrics import POOL_EXHAUSTED, SQL_STATEMENTS

if TYPE_CHECKING:
    from permbase.settings import Settings

logger = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

QueryHook = Callable[[str], None]
# Either runs a statement: the pool (its own connection) or a transaction's connection.
Executor = Union["Database", asyncpg.Connection]

# Errors that mean "the database is not there or not answering in time".
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    # raised when a connection dies in the middle of an operation (a restart)
    asyncpg.exceptions.InternalClientError,
)

UNSTORABLE_TEXT = "Text input contains a character that cannot be stored (NUL or an unpaired surrogate)."


def _unstorable_text(exc: asyncpg.exceptions.DataError) -> bool:
    """Is this a client's text that PostgreSQL cannot store? A NUL in a text
    parameter (22021), a \\u0000 escape in jsonb (22P05), or a str that is not
    UTF-8 (a lone surrogate, which JSON carries as "\\ud800"): asyncpg refuses that
    one itself, with a class-22 DataError caused by the UnicodeEncodeError."""
    if isinstance(
        exc,
        asyncpg.exceptions.CharacterNotInRepertoireError
        | asyncpg.exceptions.UntranslatableCharacterError,
    ):
        return True
    return isinstance(exc.__cause__, UnicodeEncodeError)


@cache
def read_sql(name: str) -> str:
    """Text of `sql/queries/<name>.sql`; fails loudly at import for a missing file."""
    path = SQL_DIR / "queries" / f"{name}.sql"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = f"SQL file not found for {name!r}: {path}"
        raise RuntimeError(msg) from None


class Database:
    """The pool plus the conventions around it (timeouts, error mapping, counting).

    Each request works through its own view (`for_request`): the same pool, but
    at most `request_slots` of its connections running the request's statements
    at once, so that one request cannot starve the others."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.acquire_timeout = settings.db_acquire_timeout_s
        self.request_slots = max(
            1, int(settings.db_pool_max_size * settings.request_pool_share)
        )
        # a request's view: at most `_bound` statements at once, through `_slots`
        # (made by the view's first statement: most requests run none); None: the
        # pool itself, unbounded
        self._bound: int | None = None
        self._slots: asyncio.Semaphore | None = None
        # connections this view has taken: a request that took none answered from
        # the permission cache alone (`ResponseCache`, schema/engine/prepared.py)
        self.connections = 0

    def for_request(self) -> Database:
        """A view for one request. Its statements (`fetch`, `fetchrow`,
        `fetchval`) wait for one of the request's slots; a transaction does not
        (a request runs its mutations one at a time, and a statement inside one
        runs on the transaction's connection), so nothing waits while holding."""
        view = Database.__new__(Database)
        view.__dict__ = {
            **self.__dict__,
            "_bound": self.request_slots,
            "_slots": None,
            "connections": 0,
        }
        return view

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        acquired = False
        self.connections += 1
        try:
            async with self.pool.acquire(timeout=self.acquire_timeout) as con:
                acquired = True
                yield con  # type: ignore[misc]  # a pool proxy behaves as its Connection
        except UNAVAILABLE_ERRORS as exc:
            if not acquired and isinstance(exc, TimeoutError) and self._exhausted():
                # every connection is open and in use: the database answers, we are busy
                POOL_EXHAUSTED.labels("postgres").inc()
                logger.warning(
                    "database pool exhausted: no connection within %.2f s",
                    self.acquire_timeout,
                )
                raise ServiceBusy("The service is busy; retry shortly.") from exc
            logger.warning("database unavailable: %s", type(exc).__name__)
            raise ServiceUnavailable(
                "The database is unavailable; retry shortly."
            ) from exc
        except asyncpg.exceptions.DataError as exc:
            # every statement runs here: the one place client text meets the database
            if not _unstorable_text(exc):
                raise
            raise InvalidInput(UNSTORABLE_TEXT) from exc

    def _exhausted(self) -> bool:
        pool = self.pool
        return pool.get_idle_size() == 0 and pool.get_size() >= pool.get_max_size()

    @asynccontextmanager
    async def _statement(self) -> AsyncIterator[asyncpg.Connection]:
        if self._bound is None:
            async with self.connection() as con:
                yield con
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._bound)
        async with self._slots, self.connection() as con:
            yield con

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        async with self.connection() as con, con.transaction():
            yield con

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._statement() as con:
            return await con.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self._statement() as con:
            return await con.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self._statement() as con:
            return await con.fetchval(sql, *args)

    async def ping(self) -> None:
        """Raises when PostgreSQL does not answer (readyz, the change stream)."""
        await self.fetchval("select 1")

    async def close(self) -> None:
        await self.pool.close()


# Observers of every statement (tests and benchmarks count statements with this).
query_listeners: list[QueryHook] = []


class _Connection(asyncpg.Connection):
    def get_reset_query(self) -> str:
        # The app never changes session state (no SET, LISTEN, session advisory
        # locks, cursors outside transactions), so the release-time reset query
        # is a wasted round trip per acquire.
        return ""


def _count_query(record: Any) -> None:
    SQL_STATEMENTS.inc()
    for listener in query_listeners:
        listener(record.query)


async def create_database(settings: Settings) -> Database:
    async def init(con: asyncpg.Connection) -> None:
        await con.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        # asyncpg introspects each non-builtin type the first time a connection
        # sees it; do that here, once per connection, instead of inside a request
        await con.prepare("select $1::bigint[] as a, $2::text[] as b, $3::uuid as c")
        con.add_query_logger(_count_query)

    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_connect_timeout_s,
        command_timeout=settings.db_statement_timeout_ms / 1000 + 1
        if settings.db_statement_timeout_ms
        else None,
        server_settings={
            "statement_timeout": str(settings.db_statement_timeout_ms),
            "idle_in_transaction_session_timeout": "30000",
            "application_name": "permgraph",
        },
        init=init,
        connection_class=_Connection,
    )
    return Database(pool, settings)


__all__ = [
    "SQL_DIR",
    "Executor",
    "query_listeners",
    "UNAVAILABLE_ERRORS",
    "Database",
    "create_database",
    "read_sql",
]
