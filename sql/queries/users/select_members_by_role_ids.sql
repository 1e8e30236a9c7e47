-- params: $1 bigint[] role_ids, $2 bigint after_user_id (0 = from the start), $3 int per_role_limit
-- returns: role_id bigint, id, email, display_name, avatar_url, is_active, created_at, updated_at
-- One page of members for each role, in one statement (keyset by user id): per
-- role, one range of user_roles_role_id_user_id_idx read up to the limit, then
-- those users by users_pkey. O(roles x page), whatever the roles hold.
select r.role_id, u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
from unnest($1::bigint[]) as r (role_id)
cross join lateral (
    select ur.user_id
    from user_roles ur
    -- The keyset as the index's key: the row comparison is where the index scan
    -- starts, `<=` where it stops. (Not `role_id = ... and user_id > $2`: a
    -- generic plan, which does not know $2, may walk user_roles_pkey (user_id,
    -- role_id) instead. Nor both: with an equality on role_id the scan starts at
    -- the role's first member and reads up to $2.)
    where (ur.role_id, ur.user_id) > (r.role_id, $2) and ur.role_id <= r.role_id
    order by ur.role_id, ur.user_id
    limit $3
) m
cross join lateral (
    -- a lookup by users_pkey per member (`offset 0`: never a hash join over every user)
    select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
    from users u
    where u.id = m.user_id
    offset 0
) u
order by r.role_id, u.id
