-- params: $1 bigint[] user_ids
-- returns: codes text[] (every code any of the users holds through a role, active or not)
select coalesce(array_agg(distinct p.code), '{}') as codes
from user_roles ur
join role_permissions rp on rp.role_id = ur.role_id
join permissions p on p.id = rp.permission_id
where ur.user_id = any($1::bigint[])
