-- Permission changes streamed from the database (issue 14): whoever writes
-- (permgraph's mutations, psql, a migration, another service), the same
-- transaction records whose permission entries may have changed, and every
-- instance applies the log to Redis in commit-safe order (permcore/stream.py).
--
-- Position: `xid`, the writing transaction's id (xid8, never wraps). Ids are not
-- commit order, so a reader never trusts "the last id seen": it reads a row only
-- once every transaction that could still write a smaller xid has ended, i.e.
-- below pg_snapshot_xmin(pg_current_snapshot()), and applies the newer rows it
-- can already see early, remembering which (README "How the cache stays correct").
create table permission_changes (
    id         bigint generated always as identity constraint permission_changes_pkey primary key,
    xid        xid8 not null default pg_current_xact_id(),
    user_ids   bigint[],  -- these users' entries
    role_ids   bigint[],  -- every holder of these roles (resolved when applied)
    everyone   boolean not null default false,  -- TRUNCATE and the like
    created_at timestamptz not null default clock_timestamp()
);
create index permission_changes_xid_idx on permission_changes (xid);

-- Where each instance has applied the log up to (a restarted consumer resumes
-- there; the log is trimmed below the lowest live position).
create table permission_change_readers (
    name       text constraint permission_change_readers_pkey primary key,
    position   xid8 not null,
    seen_at    timestamptz not null default now()
);

create function permission_changes_note(p_users bigint[], p_roles bigint[], p_everyone boolean)
returns void language plpgsql as $$
begin
    if p_everyone or coalesce(cardinality(p_users), 0) > 0 or coalesce(cardinality(p_roles), 0) > 0 then
        insert into permission_changes (user_ids, role_ids, everyone)
        values (nullif(p_users, '{}'), nullif(p_roles, '{}'), p_everyone);
        perform pg_notify('permission_changes', '');
    end if;
end $$;

-- user_roles: the users whose roles changed
create function permission_changes_user_roles() returns trigger language plpgsql as $$
declare ids bigint[];
begin
    if tg_op = 'INSERT' then
        select array_agg(distinct user_id) into ids from new_rows;
    elsif tg_op = 'DELETE' then
        select array_agg(distinct user_id) into ids from old_rows;
    else
        select array_agg(distinct user_id) into ids
        from (select user_id from new_rows union select user_id from old_rows) c;
    end if;
    perform permission_changes_note(ids, null, false);
    return null;
end $$;

-- role_permissions: every holder of the roles whose permissions changed
create function permission_changes_role_permissions() returns trigger language plpgsql as $$
declare ids bigint[];
begin
    if tg_op = 'INSERT' then
        select array_agg(distinct role_id) into ids from new_rows;
    elsif tg_op = 'DELETE' then
        select array_agg(distinct role_id) into ids from old_rows;
    else
        select array_agg(distinct role_id) into ids
        from (select role_id from new_rows union select role_id from old_rows) c;
    end if;
    perform permission_changes_note(null, ids, false);
    return null;
end $$;

-- roles: a renamed role changes its holders' entries (a deleted one cascades to
-- user_roles and role_permissions, whose triggers record it)
create function permission_changes_roles() returns trigger language plpgsql as $$
declare ids bigint[];
begin
    select array_agg(distinct n.id) into ids
    from new_rows n join old_rows o on o.id = n.id
    where n.name is distinct from o.name;
    perform permission_changes_note(null, ids, false);
    return null;
end $$;

-- permissions: a renamed code changes the entries of every holder of the roles
-- that grant it (a deleted one cascades to role_permissions)
create function permission_changes_permissions() returns trigger language plpgsql as $$
declare ids bigint[];
begin
    select array_agg(distinct rp.role_id) into ids
    from new_rows n join old_rows o on o.id = n.id
    join role_permissions rp on rp.permission_id = n.id
    where n.code is distinct from o.code;
    perform permission_changes_note(null, ids, false);
    return null;
end $$;

-- users: activation and sessions ended by a password change; a deleted user
-- (also one without roles, whose entry says "active, no roles")
create function permission_changes_users() returns trigger language plpgsql as $$
declare ids bigint[];
begin
    if tg_op = 'DELETE' then
        select array_agg(id) into ids from old_rows;
    else
        select array_agg(n.id) into ids
        from new_rows n join old_rows o on o.id = n.id
        where n.is_active is distinct from o.is_active
           or n.tokens_not_before is distinct from o.tokens_not_before;
    end if;
    perform permission_changes_note(ids, null, false);
    return null;
end $$;

-- refresh_tokens: a revoked session is listed in its user's entry
create function permission_changes_refresh_tokens() returns trigger language plpgsql as $$
declare ids bigint[];
begin
    if tg_op = 'DELETE' then
        select array_agg(distinct user_id) into ids from old_rows where revoked_at is not null;
    else
        select array_agg(distinct n.user_id) into ids
        from new_rows n join old_rows o on o.jti = n.jti
        where n.revoked_at is distinct from o.revoked_at
           or n.access_until is distinct from o.access_until;
    end if;
    perform permission_changes_note(ids, null, false);
    return null;
end $$;

create function permission_changes_everyone() returns trigger language plpgsql as $$
begin
    perform permission_changes_note(null, null, true);
    return null;
end $$;

create trigger permission_changes_ins after insert on user_roles
    referencing new table as new_rows for each statement execute function permission_changes_user_roles();
create trigger permission_changes_del after delete on user_roles
    referencing old table as old_rows for each statement execute function permission_changes_user_roles();
create trigger permission_changes_upd after update on user_roles
    referencing new table as new_rows old table as old_rows for each statement execute function permission_changes_user_roles();

create trigger permission_changes_ins after insert on role_permissions
    referencing new table as new_rows for each statement execute function permission_changes_role_permissions();
create trigger permission_changes_del after delete on role_permissions
    referencing old table as old_rows for each statement execute function permission_changes_role_permissions();
create trigger permission_changes_upd after update on role_permissions
    referencing new table as new_rows old table as old_rows for each statement execute function permission_changes_role_permissions();

create trigger permission_changes_upd after update on roles
    referencing new table as new_rows old table as old_rows for each statement execute function permission_changes_roles();
create trigger permission_changes_upd after update on permissions
    referencing new table as new_rows old table as old_rows for each statement execute function permission_changes_permissions();

create trigger permission_changes_upd after update on users
    referencing new table as new_rows old table as old_rows for each statement execute function permission_changes_users();
create trigger permission_changes_del after delete on users
    referencing old table as old_rows for each statement execute function permission_changes_users();

create trigger permission_changes_upd after update on refresh_tokens
    referencing new table as new_rows old table as old_rows for each statement execute function permission_changes_refresh_tokens();
create trigger permission_changes_del after delete on refresh_tokens
    referencing old table as old_rows for each statement execute function permission_changes_refresh_tokens();

create trigger permission_changes_truncate after truncate on user_roles
    for each statement execute function permission_changes_everyone();
create trigger permission_changes_truncate after truncate on role_permissions
    for each statement execute function permission_changes_everyone();
create trigger permission_changes_truncate after truncate on roles
    for each statement execute function permission_changes_everyone();
create trigger permission_changes_truncate after truncate on permissions
    for each statement execute function permission_changes_everyone();
create trigger permission_changes_truncate after truncate on users
    for each statement execute function permission_changes_everyone();
