-- params: $1 bigint after_id (0 = from the start), $2 boolean is_active, $3 int lim
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
-- Keyset by id over users_is_active_idx (is_active, id): reads the page and no more.
-- The keyset is written as that index's key (see select_members_by_role_ids.sql)
-- so that no plan, not even the generic one, which does not know $2, walks
-- users_pkey past the users of the other value.
select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
from users u
where (u.is_active, u.id) > ($2, $1) and u.is_active <= $2
order by u.is_active, u.id
limit $3
