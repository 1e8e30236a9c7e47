-- params: $1 bigint[] role_ids
-- returns: role_id bigint, id bigint, code text, description text
select rp.role_id, p.id, p.code, p.description
from role_permissions rp
join permissions p on p.id = rp.permission_id
where rp.role_id = any($1::bigint[])
order by rp.role_id, p.code
