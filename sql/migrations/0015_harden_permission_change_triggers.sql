-- The change log's trigger functions (0013, 0014) run for every writer, whoever
-- it is: as their owner (SECURITY DEFINER), so that a writer's role needs no
-- grant on permission_changes, and with the search_path of this migration, so
-- that a writer's own search_path cannot point them at other tables.
--
-- And what the first version missed: an UPDATE that changes a key (users.id,
-- refresh_tokens.jti) or a token's user or family, and a refresh token inserted
-- already revoked.

create or replace function permission_changes_users() returns trigger language plpgsql as $$
declare ids bigint[];
begin
    if tg_op = 'DELETE' then
        select array_agg(id) into ids from old_rows;
    elsif tg_op = 'INSERT' then
        select array_agg(id) into ids from new_rows;
    else
        select array_agg(distinct id) into ids from (
            select n.id from new_rows n left join old_rows o on o.id = n.id
            where o.id is null
               or n.is_active is distinct from o.is_active
               or n.tokens_not_before is distinct from o.tokens_not_before
            union
            select o.id from old_rows o left join new_rows n on n.id = o.id
            where n.id is null
        ) c;
    end if;
    perform permission_changes_note(ids, null, false);
    return null;
end $$;

create or replace function permission_changes_refresh_tokens() returns trigger language plpgsql as $$
declare ids bigint[];
begin
    if tg_op = 'DELETE' then
        select array_agg(distinct user_id) into ids from old_rows where revoked_at is not null;
    elsif tg_op = 'INSERT' then
        select array_agg(distinct user_id) into ids from new_rows where revoked_at is not null;
    else
        select array_agg(distinct user_id) into ids from (
            select n.user_id from new_rows n left join old_rows o on o.jti = n.jti
            where o.jti is null
               or n.revoked_at is distinct from o.revoked_at
               or n.access_until is distinct from o.access_until
               or n.user_id is distinct from o.user_id
               or n.family_id is distinct from o.family_id
            union
            select o.user_id from old_rows o left join new_rows n on n.jti = o.jti
            where n.jti is null
               or n.user_id is distinct from o.user_id
               or n.family_id is distinct from o.family_id
        ) c;
    end if;
    perform permission_changes_note(ids, null, false);
    return null;
end $$;

create trigger permission_changes_ins after insert on refresh_tokens
    referencing new table as new_rows for each statement execute function permission_changes_refresh_tokens();

do $$
declare f text;
begin
    foreach f in array array[
        'permission_changes_note(bigint[], bigint[], boolean)',
        'permission_changes_user_roles()',
        'permission_changes_role_permissions()',
        'permission_changes_roles()',
        'permission_changes_permissions()',
        'permission_changes_users()',
        'permission_changes_refresh_tokens()',
        'permission_changes_everyone()'
    ] loop
        execute format('alter function %s security definer set search_path from current', f);
    end loop;
end $$;
