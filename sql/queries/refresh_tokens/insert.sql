-- params: $1 uuid jti, $2 uuid family_id, $3 bigint user_id, $4 timestamptz expires_at
-- returns: nothing
insert into refresh_tokens (jti, family_id, user_id, expires_at) values ($1, $2, $3, $4)
