-- params: $1 bigint permission_id
-- returns: user_id bigint (distinct holders of any role granting the permission)
select distinct ur.user_id
from role_permissions rp
join user_roles ur on ur.role_id = rp.role_id
where rp.permission_id = $1
