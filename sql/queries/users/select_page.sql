-- params: $1 bigint after_id (0 = from the start), $2 text email_contains (null = any),
--         $3 boolean is_active (null = any), $4 text role_name (null = any), $5 int lim
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
-- Keyset pagination by id; the caller asks for one row more than the page to
-- learn whether another page follows.
select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
from users u
where u.id > $1
  and ($2::text is null or strpos(lower(u.email), lower($2::text)) > 0)
  and ($3::boolean is null or u.is_active = $3::boolean)
  and ($4::text is null or exists (
        select 1 from user_roles ur join roles r on r.id = ur.role_id
        where ur.user_id = u.id and r.name = $4::text))
order by u.id
limit $5
