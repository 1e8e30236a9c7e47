-- params: $1 text permission code
-- returns: count bigint (active users holding the permission through any role)
select count(distinct u.id)
from users u
join user_roles ur on ur.user_id = u.id
join role_permissions rp on rp.role_id = ur.role_id
join permissions p on p.id = rp.permission_id
where p.code = $1 and u.is_active
