-- params: $1 bigint id, $2 text new_password_hash (null = keep)
-- returns: nothing
update users
set failed_logins = 0, locked_until = null,
    password_hash = coalesce($2, password_hash)
where id = $1
