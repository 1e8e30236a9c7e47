-- params: $1 text pattern (an ILIKE pattern as in select_page_by_email.sql), $2 boolean is_active (null = any)
-- returns: count bigint (O(matches) through users_email_trgm_idx for a selective pattern)
select count(*)
from users u
where u.email ilike $1::text
  and ($2::boolean is null or u.is_active = $2::boolean)
