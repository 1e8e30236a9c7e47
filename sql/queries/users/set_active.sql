-- params: $1 bigint id, $2 boolean is_active
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
update users set is_active = $2, updated_at = now() where id = $1
returning id, email, display_name, avatar_url, is_active, created_at, updated_at
