-- params: $1 bigint permission_id
-- returns: codes text[] (every code held, through any role, by a holder of the permission)
select coalesce(array_agg(distinct p.code), '{}') as codes
from user_roles ur
join role_permissions rp on rp.role_id = ur.role_id
join permissions p on p.id = rp.permission_id
where ur.user_id in (
    select h.user_id
    from user_roles h
    join role_permissions hp on hp.role_id = h.role_id
    where hp.permission_id = $1
)
