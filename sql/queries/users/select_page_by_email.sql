-- params: $1 bigint after_id (0 = from the start), $2 text pattern (an ILIKE pattern:
--         '%' || the text with \ % _ escaped || '%'), $3 boolean is_active (null = any), $4 int lim
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
-- The planner picks by the pattern: a selective one reads its matches through
-- users_email_trgm_idx (O(matches)); a common one walks users_pkey until the page
-- is full (O(page / share of users matching)).
select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
from users u
where u.email ilike $2::text
  and ($3::boolean is null or u.is_active = $3::boolean)
  and u.id > $1
order by u.id
limit $4
