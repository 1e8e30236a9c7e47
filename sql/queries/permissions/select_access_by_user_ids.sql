-- params: $1 bigint[] user_ids
-- returns: user_id bigint, is_active boolean, role_ids bigint[], roles text[], codes text[]
-- One row per existing user (unknown ids have no row); roles ordered by name,
-- permission codes deduplicated and sorted.
select u.id as user_id,
       u.is_active,
       coalesce(r.role_ids, '{}') as role_ids,
       coalesce(r.roles, '{}') as roles,
       coalesce(p.codes, '{}') as codes
from users u
left join lateral (
    select array_agg(ro.id order by ro.name) as role_ids,
           array_agg(ro.name order by ro.name) as roles
    from user_roles ur
    join roles ro on ro.id = ur.role_id
    where ur.user_id = u.id
) r on true
left join lateral (
    select array_agg(distinct pe.code order by pe.code) as codes
    from user_roles ur
    join role_permissions rp on rp.role_id = ur.role_id
    join permissions pe on pe.id = rp.permission_id
    where ur.user_id = u.id
) p on true
where u.id = any($1::bigint[])
