-- params: $1 uuid family_id
-- returns: nothing (the status tells how many tokens were revoked now)
update refresh_tokens set revoked_at = now() where family_id = $1 and revoked_at is null
