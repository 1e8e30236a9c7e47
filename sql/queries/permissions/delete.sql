-- params: $1 bigint permission_id
-- returns: the deleted row (role_permissions rows go with it by cascade)
delete from permissions where id = $1 returning id, code, description
