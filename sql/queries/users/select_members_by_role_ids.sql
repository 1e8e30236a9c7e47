-- params: $1 bigint[] role_ids, $2 bigint after_user_id (0 = from the start), $3 int per_role_limit
-- returns: role_id bigint, id, email, display_name, avatar_url, is_active, created_at, updated_at
-- One page of members for each role, in one statement (keyset by user id).
select role_id, id, email, display_name, avatar_url, is_active, created_at, updated_at
from (
    select ur.role_id, u.id, u.email, u.display_name, u.avatar_url, u.is_active,
           u.created_at, u.updated_at,
           row_number() over (partition by ur.role_id order by u.id) as rn
    from user_roles ur
    join users u on u.id = ur.user_id
    where ur.role_id = any($1::bigint[]) and ur.user_id > $2
) page
where rn <= $3
order by role_id, id
