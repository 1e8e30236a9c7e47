-- params: $1 bigint role_id
-- returns: nothing. The demo admin holds every synthetic permission, so it may
-- assign the synthetic team roles (the delegation rule: hold what you hand out).
insert into role_permissions (role_id, permission_id)
select $1, p.id from permissions p where p.code ~ '^res_[0-9]+:(read|write)$'
on conflict do nothing
