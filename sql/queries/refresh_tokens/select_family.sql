-- params: $1 uuid jti
-- returns: family_id uuid, user_id bigint (of a known token, live or not)
select family_id, user_id from refresh_tokens where jti = $1
