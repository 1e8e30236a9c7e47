-- params: $1 uuid jti
-- returns: family_id uuid, user_id bigint when the token was live and is now spent;
-- nothing otherwise. The row lock makes exactly one of two concurrent refreshes win.
update refresh_tokens
set used_at = now()
where jti = $1 and used_at is null and revoked_at is null and expires_at > now()
returning family_id, user_id
