-- params: $1 text role_name, $2 text[] codes
-- returns: nothing
insert into role_permissions (role_id, permission_id)
select r.id, p.id from roles r join permissions p on p.code = any($2::text[])
where r.name = $1
on conflict do nothing
