-- params: $1 bigint after_id (0 = from the start), $2 int lim
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
-- Keyset pagination by id over users_pkey: reads the page and no more. The
-- caller asks for one row more than the page to learn whether another follows.
-- Each filter has its own statement (select_page_by_*.sql): a statement whose
-- conditions are optional (`$n is null or ...`) has one generic plan for every
-- shape, and PostgreSQL switches a prepared statement to it after 5 executions.
select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
from users u
where u.id > $1
order by u.id
limit $2
