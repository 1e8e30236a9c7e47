-- params: $1 bigint[] role_ids
-- returns: role_id bigint, count bigint
-- totalCount of members: O(members) (an index-only scan of user_roles_role_id_user_id_idx), as any exact count.
select role_id, count(*) from user_roles where role_id = any($1::bigint[]) group by role_id
