-- params: $1 text role_name, $2 text pattern (null = any; as in select_page_by_email.sql), $3 boolean is_active (null = any)
-- returns: count bigint (O(members of the role): user_roles_role_id_user_id_idx, plus
-- each member's row only when another filter needs it)
select count(*)
from roles r
join user_roles ur on ur.role_id = r.id
where r.name = $1::text
  and (($2::text is null and $3::boolean is null) or exists (
        select 1 from users u
        where u.id = ur.user_id
          and ($2::text is null or u.email ilike $2::text)
          and ($3::boolean is null or u.is_active = $3::boolean)))
