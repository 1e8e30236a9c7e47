-- params: $1 bigint id, $2 text email
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
update users set email = $2, updated_at = now() where id = $1
returning id, email, display_name, avatar_url, is_active, created_at, updated_at
