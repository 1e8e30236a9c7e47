-- params: $1 bigint id, $2 text password_hash, $3 timestamptz tokens_not_before
-- returns: nothing
-- Every password change ends the user's sessions: access tokens issued before $3
-- no longer count (api/models.py UserAccess.not_before).
update users set password_hash = $2, tokens_not_before = $3, updated_at = now() where id = $1
