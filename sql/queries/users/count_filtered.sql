-- params: $1 text email_contains (null = any), $2 boolean is_active (null = any), $3 text role_name (null = any)
-- returns: count bigint
select count(*)
from users u
where ($1::text is null or strpos(lower(u.email), lower($1::text)) > 0)
  and ($2::boolean is null or u.is_active = $2::boolean)
  and ($3::text is null or exists (
        select 1 from user_roles ur join roles r on r.id = ur.role_id
        where ur.user_id = u.id and r.name = $3::text))
