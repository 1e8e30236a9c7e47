-- params: $1 bigint after_id (0 = from the start), $2 text pattern (an ILIKE pattern as
--         in select_page_by_email.sql), $3 bigint role_id, $4 boolean is_active (null = any), $5 int lim
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
-- Both filters, planned for each call (set_custom_plans.sql) with the role's id,
-- so that the planner knows the role's size (user_roles.role_id's statistics) and
-- starts from the smaller side: the pattern's matches (users_email_trgm_idx), the
-- role's members (user_roles_role_id_user_id_idx), or users_pkey when both are
-- common. Not O(page): no index holds both (see bench/README.md, scale).
select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
from users u
where u.email ilike $2::text
  and ($4::boolean is null or u.is_active = $4::boolean)
  and u.id > $1
  and exists (
        select 1 from user_roles ur
        where ur.role_id = $3 and ur.user_id = u.id and ur.user_id > $1)
order by u.id
limit $5
