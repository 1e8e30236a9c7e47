from __future__ import annotations

import strawberry

from permbase.errors import InvalidInput, NotFound
from permstore import users as user_store
from schema.context import Context, Info
from schema.pagination import check_first, decode_cursor, parse_id
from schema.permissions import authenticated
from schema.types import User, UserConnection, count_users, entry_answers, wants_access


@strawberry.input
class UserFilter:
    email_contains: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of the email."
    )
    is_active: bool | None = None
    role: str | None = strawberry.field(
        default=None, description="Holds the role of this name."
    )


@strawberry.type
class UserQueries:
    @strawberry.field(description="Needs users:read.")
    async def user(self, info: Info, id: strawberry.ID) -> User | None:
        ctx = info.context
        ctx.require_principal()
        try:
            uid = parse_id(id)
        except InvalidInput:
            await _authorize(ctx)  # FORBIDDEN before a word about the argument
            raise
        if entry_answers(info):
            # "what may this user do?": the permission entry answers it (and
            # whether the user exists) without the user's row: 1 MGET, no SQL
            # on a warm cache
            access = (await ctx.load_viewer_with([uid]))[0]
            ctx.require("users:read")
            if access is None:
                raise NotFound(f"No user with id {uid}.", id=str(uid))
            return User.from_entry(access)
        row = await ctx.loaders.users_by_id.load(uid)
        # the caller's entry rides in the same MGET as this user's (schema/engine/viewer.py)
        rows = [row] if row is not None and wants_access(info) else []
        accesses = await ctx.load_viewer_with([r.id for r in rows])
        ctx.require("users:read")  # before anything, even "not found", is told
        if row is None:
            raise NotFound(f"No user with id {uid}.", id=str(uid))
        return User.from_row(row, accesses[0]) if accesses else User.from_row(row)

    @strawberry.field(description="Users by id, Relay-style. Needs users:read.")
    async def users(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: UserFilter | None = None,
    ) -> UserConnection:
        ctx = info.context
        ctx.require_principal()
        try:
            size = check_first(first, ctx.settings.max_page_size)
            after_id = decode_cursor("user", after)
            flt = _store_filter(filter)
        except InvalidInput:
            await _authorize(ctx)  # FORBIDDEN before a word about the arguments
            raise
        texts = flt.email_contains is not None or flt.role is not None
        if texts:
            # client text goes into the SQL (a costly scan, or text the database
            # refuses): only for a caller allowed to ask
            await _authorize(ctx)
        rows = (
            await user_store.select_page(ctx.db, after_id, flt, size + 1)
            if size
            else []
        )
        page = rows[:size] if wants_access(info) else []
        if texts:
            accesses = await ctx.load_access_page([r.id for r in page]) if page else []
        else:
            # the caller's entry rides in the same MGET as the page's (schema/engine/viewer.py):
            # the SQL before the check took only validated integers
            accesses = await ctx.load_viewer_with([r.id for r in page])
            ctx.require("users:read")  # before any row is returned
        return UserConnection.build(
            rows, size, after_id, count_users(info, flt), accesses if page else None
        )

    @strawberry.field(extensions=authenticated(), description="The caller.")
    async def me(self, info: Info) -> User:
        ctx = info.context
        access = ctx.viewer_access()
        if entry_answers(info):  # the caller's entry holds all that is asked: no SQL
            return User.from_entry(access)
        row = await ctx.loaders.users_by_id.load(access.user_id)
        if row is None:
            raise NotFound("The account no longer exists.")
        return User.from_row(row, access)


def _store_filter(filter: UserFilter | None) -> user_store.UserFilter:
    if filter is None:
        return user_store.UserFilter()
    if filter.email_contains is not None and len(filter.email_contains) > 254:
        raise InvalidInput("'emailContains' is too long.", argument="filter")
    return user_store.UserFilter(filter.email_contains, filter.is_active, filter.role)


async def _authorize(ctx: Context) -> None:
    """users:read, checked before anything else (these fields otherwise load the
    caller's entry together with their page's, after their SQL)."""
    await ctx.load_viewer()
    ctx.require("users:read")


__all__ = ["UserFilter", "UserQueries"]
