-- params: $1 bigint user_id
-- returns: password_hash text
select password_hash from users where id = $1
