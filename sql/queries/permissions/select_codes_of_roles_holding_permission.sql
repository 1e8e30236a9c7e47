-- params: $1 bigint permission_id
-- returns: codes text[] (every code of every role that holds the permission,
-- holders or not: deleting the code takes it from each of those roles)
select coalesce(array_agg(distinct p.code), '{}') as codes
from role_permissions rp
join permissions p on p.id = rp.permission_id
where rp.role_id in (select role_id from role_permissions where permission_id = $1)
