-- 0015 made the change log's functions SECURITY DEFINER with the migration's own
-- search_path. That path did not name pg_temp, and PostgreSQL then searches a
-- session's temporary schema FIRST: a writer could shadow permission_changes
-- with a temporary table of its own (hiding its changes from the log, and
-- running its own code with the owner's rights). Pin the path explicitly, with
-- pg_temp last, and let nobody but the owner call the functions directly
-- (triggers fire them whatever the EXECUTE right; permgraph calls
-- permission_changes_note as the role that owns it, the one that migrates; a
-- service running as another role needs a GRANT EXECUTE on it). Otherwise any
-- role that can connect could make every instance flush the whole cache.
--
-- A later CREATE OR REPLACE of these functions keeps neither SECURITY DEFINER
-- nor this path nor the revoke: a migration that replaces one must restate them.
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
        -- the schema this migration creates its tables in, then pg_temp
        execute format('alter function %s set search_path = %I, pg_temp', f, current_schema());
        execute format('revoke execute on function %s from public', f);
    end loop;
end $$;
