-- params: $1 bigint id, $2 text password_hash
-- returns: nothing
update users set password_hash = $2, updated_at = now() where id = $1
