-- users(filter: {emailContains}) in O(page), whatever the emails have in common.
--
-- The trigram index (0012) finds a text's emails through the posting lists of the
-- text's trigrams: its cost follows the text's RAREST trigram, not its matches.
-- When every trigram of a rare text is common (`user1000000@`: every synthetic
-- email holds `use` and `ser`, one in a hundred ends in `00`), it reads 10,000
-- candidates at 1M users to find one (bench/README.md, scale).
--
-- Every suffix of every lower-cased email, in byte order: the emails holding a
-- text are those with a suffix that starts with it, one range of this table's
-- primary key, read in order and stopped after a few thousand
-- (sql/queries/users/select_page_by_email.sql). A text with more matches than
-- that is common enough for a walk of users_pkey to fill a page quickly.
--
-- lower(email) LIKE lower(text) is what ILIKE does in a UTF-8 database, so the
-- suffixes find exactly what `email ILIKE` finds; the page still rechecks each
-- email, so a stale row can only cost a lookup, never answer a wrong user.
-- Kept by triggers, for every writer (the migrations, psql, other services).
--
-- Size: ~22 rows per user (one per character), 1.9 GB with its key at 1M users
-- (users itself: 0.3 GB). The backfill below blocks writes to users while it runs
-- (94 s at 1M users on a 2-core machine; under a second at 10k).
lock table users in share row exclusive mode;

create table user_email_suffixes (
    suffix  text collate "C" not null,
    user_id bigint not null
);

create function user_email_suffixes_of(p_email text) returns setof text
    language sql immutable strict parallel safe as $$
    select substr(lower(p_email), i) from generate_series(1, length(p_email)) i
$$;

-- Filled before its key is built: one sort instead of 22 random inserts per user.
insert into user_email_suffixes (suffix, user_id)
select user_email_suffixes_of(u.email), u.id from users u;
alter table user_email_suffixes add primary key (suffix, user_id);
analyze user_email_suffixes;

-- One statement-level trigger per operation (each sees its transition tables).
-- An UPDATE touches the suffixes only of rows whose id or email changed: logins
-- update users too.
create function user_email_suffixes_insert() returns trigger language plpgsql as $$
begin
    insert into user_email_suffixes (suffix, user_id)
    select user_email_suffixes_of(n.email), n.id from new_rows n
    on conflict do nothing;
    return null;
end $$;

create function user_email_suffixes_delete() returns trigger language plpgsql as $$
begin
    delete from user_email_suffixes s
    using old_rows o
    where s.user_id = o.id
      and s.suffix in (select user_email_suffixes_of(o.email) collate "C");
    return null;
end $$;

create function user_email_suffixes_update() returns trigger language plpgsql as $$
begin
    delete from user_email_suffixes s
    using (select id, email from old_rows except select id, email from new_rows) o
    where s.user_id = o.id
      and s.suffix in (select user_email_suffixes_of(o.email) collate "C");
    insert into user_email_suffixes (suffix, user_id)
    select user_email_suffixes_of(n.email), n.id
    from (select id, email from new_rows except select id, email from old_rows) n
    on conflict do nothing;
    return null;
end $$;

create function user_email_suffixes_truncate() returns trigger language plpgsql as $$
begin
    truncate user_email_suffixes;
    return null;
end $$;

-- As the change log's functions (0015, 0016): run as their owner, whoever writes
-- users, with a pinned search_path (pg_temp last), callable by nobody directly.
do $$
declare f text;
begin
    foreach f in array array[
        'user_email_suffixes_insert()',
        'user_email_suffixes_delete()',
        'user_email_suffixes_update()',
        'user_email_suffixes_truncate()'
    ] loop
        execute format('alter function %s security definer', f);
        execute format('alter function %s set search_path = %I, pg_temp', f, current_schema());
        execute format('revoke execute on function %s from public', f);
    end loop;
end $$;

create trigger user_email_suffixes_ins after insert on users
    referencing new table as new_rows for each statement execute function user_email_suffixes_insert();
create trigger user_email_suffixes_del after delete on users
    referencing old table as old_rows for each statement execute function user_email_suffixes_delete();
create trigger user_email_suffixes_upd after update on users
    referencing new table as new_rows old table as old_rows
    for each statement execute function user_email_suffixes_update();
create trigger user_email_suffixes_trunc after truncate on users
    for each statement execute function user_email_suffixes_truncate();

