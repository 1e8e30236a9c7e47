-- params: $1 bigint user_id, $2 bigint role_id
-- returns: user_id (nothing when not assigned)
delete from user_roles where user_id = $1 and role_id = $2 returning user_id
