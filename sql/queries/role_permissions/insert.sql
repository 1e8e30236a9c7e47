-- params: $1 bigint role_id, $2 bigint permission_id
-- returns: role_id (nothing when already granted)
insert into role_permissions (role_id, permission_id) values ($1, $2)
on conflict do nothing
returning role_id
