-- params: $1 bigint role_id, $2 text[] codes
-- returns: nothing
insert into role_permissions (role_id, permission_id)
select $1, p.id from permissions p where p.code = any($2::text[])
on conflict do nothing
