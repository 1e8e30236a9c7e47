-- params: $1 bigint after_id (0 = from the start), $2 text, $3 text prefix (both
--         as in select_page_by_email.sql), $4 bigint role_id, $5 boolean is_active
--         (null = any), $6 int lim, $7 int rare (as in select_page_by_email.sql)
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
-- Both filters. A rare text: its few matches (user_email_suffixes_pkey), each
-- checked for the role. A common one: planned for each call
-- (plan_text_filter.sql) with the role's id, so that the planner knows the
-- role's size (user_roles.role_id's statistics) and starts from the smaller
-- side: the role's members (user_roles_role_id_user_id_idx) or users_pkey, each
-- filtered by the text. When both are common and their intersection is sparse,
-- that walk is long (bench/README.md, scale).
with found as materialized (
    select s.user_id
    from user_email_suffixes s
    where s.suffix like (lower($3::text) collate "C")
    order by s.suffix, s.user_id  -- the key's order: a range of it, stopped early
    limit $7::int + 1
), rare as materialized (
    select count(*) <= $7::int as yes from found
)
select * from (
    (select u.*
     from (select distinct f.user_id from found f where f.user_id > $1) c
     cross join lateral (  -- one lookup by id per candidate, in id order, until the page is full
         select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
         from users u
         where u.id = c.user_id
           and strpos(lower(u.email), lower($2::text)) > 0
           and ($5::boolean is null or u.is_active = $5::boolean)
           and exists (select 1 from user_roles ur where ur.role_id = $4 and ur.user_id = u.id)
         limit 1) u
     where (select yes from rare)
     order by c.user_id
     limit $6)
    union all
    (select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
     from users u
     where not (select yes from rare)
       and strpos(lower(u.email), lower($2::text)) > 0
       and ($5::boolean is null or u.is_active = $5::boolean)
       and u.id > $1
       and exists (
             select 1 from user_roles ur
             where ur.role_id = $4 and ur.user_id = u.id and ur.user_id > $1)
     order by u.id
     limit $6)
) page
order by page.id
limit $6
