-- params: $1 bigint[] ids
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
select id, email, display_name, avatar_url, is_active, created_at, updated_at from users where id = any($1::bigint[])
