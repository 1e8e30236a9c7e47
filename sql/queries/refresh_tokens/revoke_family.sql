-- params: $1 uuid family_id
-- returns: nothing
update refresh_tokens set revoked_at = now() where family_id = $1 and revoked_at is null
