-- params: $1 bigint role_id
-- returns: codes text[] (every code held, through any role, by a holder of the role)
select coalesce(array_agg(distinct p.code), '{}') as codes
from user_roles holder
join user_roles ur on ur.user_id = holder.user_id
join role_permissions rp on rp.role_id = ur.role_id
join permissions p on p.id = rp.permission_id
where holder.role_id = $1
