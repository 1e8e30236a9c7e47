-- params: $1 text email
-- returns: id bigint, password_hash text, is_active boolean, locked_until timestamptz
select id, password_hash, is_active, locked_until from users where lower(email) = lower($1)
