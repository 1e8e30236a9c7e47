-- params: $1 text email, $2 text display_name, $3 text avatar_url, $4 text password_hash
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at (nothing when the email is taken, case-insensitively)
insert into users (email, display_name, avatar_url, password_hash)
values ($1, $2, $3, $4)
on conflict ((lower(email))) do nothing
returning id, email, display_name, avatar_url, is_active, created_at, updated_at
