-- params: $1 text email
-- returns: id bigint, password_hash text, is_active boolean
select id, password_hash, is_active from users where lower(email) = lower($1)
