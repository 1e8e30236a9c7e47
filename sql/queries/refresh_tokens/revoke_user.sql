-- params: $1 bigint user_id
-- returns: nothing
update refresh_tokens set revoked_at = now() where user_id = $1 and revoked_at is null
