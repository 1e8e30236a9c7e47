-- The delegation rule's facts, kept by the database itself.
--
-- roles.builtin_key: the seed finds its built-in roles by this stable key, never
-- by today's name (a delegate may rename roles; the seed must not follow a name).
alter table roles add column builtin_key text constraint roles_builtin_key_key unique;
update roles set builtin_key = name where name in ('admin', 'editor', 'viewer');

-- What the seed has done once and must never redo over an admin's changes
-- ('base': built-in roles and permissions; 'first_admin': the first admin's id).
create table seed_mark (
    key        text constraint seed_mark_pkey primary key,
    ref        bigint,
    created_at timestamptz not null default now()
);
-- A database seeded before this migration: its base, its first admin (by the
-- e-mail the seed used, else none: never a second admin) and its synthetic users
-- count as done, so the first start after the upgrade changes nothing.
update roles set builtin_key = name where name ~ '^team-[0-9]{2}$' and description = 'synthetic (benchmark)';
insert into seed_mark (key) select 'base' where exists (select 1 from roles where builtin_key = 'admin');
insert into seed_mark (key, ref)
select 'first_admin', (select min(u.id) from users u where lower(u.email) = 'admin@permgraph.local')
where exists (select 1 from roles where builtin_key = 'admin');
insert into seed_mark (key, ref)
select 'synthetic_users', max(substring(email from '^user([0-9]+)@example\.com$')::bigint)
from users where email ~ '^user[0-9]+@example\.com$'
having count(*) > 0;

-- Every permission code that was ever granted to a role, whoever granted it and
-- however (API, psql, migrations): deleting and re-creating a code never makes it
-- "a code nobody has held", so it cannot be laundered into a grantable one.
create table granted_permission_code (
    code             text constraint granted_permission_code_pkey primary key,
    first_granted_at timestamptz not null default now()
);
insert into granted_permission_code (code)
select distinct p.code from role_permissions rp join permissions p on p.id = rp.permission_id;

create function note_granted_permission_code() returns trigger
language plpgsql as $$
begin
    insert into granted_permission_code (code)
    select distinct p.code from granted_rows g join permissions p on p.id = g.permission_id
    on conflict do nothing;
    return null;
end
$$;

create trigger role_permissions_note_granted
after insert on role_permissions
referencing new table as granted_rows
for each statement execute function note_granted_permission_code();
