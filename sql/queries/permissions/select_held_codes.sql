-- params: $1 text[] codes
-- returns: code text (those of the codes some user holds through a role, active or not)
select distinct p.code
from permissions p
join role_permissions rp on rp.permission_id = p.id
join user_roles ur on ur.role_id = rp.role_id
where p.code = any($1::text[])
