-- The application-written outbox (0008) is replaced by the permission change log
-- (0013), which every writer fills, permgraph's mutations included: one
-- mechanism for every writer (permcore/stream.py).
drop table cache_outbox;

-- A new user: an id read before the row existed is cached as "no such user".
create or replace function permission_changes_users() returns trigger language plpgsql as $$
declare ids bigint[];
begin
    if tg_op = 'DELETE' then
        select array_agg(id) into ids from old_rows;
    elsif tg_op = 'INSERT' then
        select array_agg(id) into ids from new_rows;
    else
        select array_agg(n.id) into ids
        from new_rows n join old_rows o on o.id = n.id
        where n.is_active is distinct from o.is_active
           or n.tokens_not_before is distinct from o.tokens_not_before;
    end if;
    perform permission_changes_note(ids, null, false);
    return null;
end $$;

create trigger permission_changes_ins after insert on users
    referencing new table as new_rows for each statement execute function permission_changes_users();
