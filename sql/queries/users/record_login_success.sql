-- params: $1 bigint id, $2 text new_password_hash, $3 text verified_password_hash
-- returns: nothing
-- After a successful login: the same password, re-hashed with today's parameters
-- (not a password change, so no session ends), unless the hash changed meanwhile.
update users set password_hash = $2 where id = $1 and password_hash = $3
