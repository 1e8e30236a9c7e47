-- params: $1 bigint user_id
-- returns: is_active boolean (no row for an unknown user)
select is_active from users where id = $1
