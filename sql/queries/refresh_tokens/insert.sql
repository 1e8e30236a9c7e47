-- params: $1 uuid jti, $2 uuid family_id, $3 bigint user_id, $4 timestamptz expires_at,
--         $5 timestamptz access_until (expiry + leeway of the access token issued with it)
-- returns: nothing
insert into refresh_tokens (jti, family_id, user_id, expires_at, access_until) values ($1, $2, $3, $4, $5)
