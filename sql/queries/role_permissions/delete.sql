-- params: $1 bigint role_id, $2 bigint permission_id
-- returns: role_id (nothing when not granted)
delete from role_permissions where role_id = $1 and permission_id = $2 returning role_id
