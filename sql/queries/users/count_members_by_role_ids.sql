-- params: $1 bigint[] role_ids
-- returns: role_id bigint, count bigint
select role_id, count(*) from user_roles where role_id = any($1::bigint[]) group by role_id
