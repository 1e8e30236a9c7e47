-- params: $1 bigint id
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at (row locked for the transaction)
select id, email, display_name, avatar_url, is_active, created_at, updated_at from users where id = $1 for update
