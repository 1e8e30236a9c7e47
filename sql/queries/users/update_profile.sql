-- params: $1 bigint id, $2 text display_name (null = keep), $3 text avatar_url (null = keep), $4 boolean clear_avatar
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
update users
set display_name = coalesce($2, display_name),
    avatar_url = case when $4 then null else coalesce($3, avatar_url) end,
    updated_at = now()
where id = $1
returning id, email, display_name, avatar_url, is_active, created_at, updated_at
