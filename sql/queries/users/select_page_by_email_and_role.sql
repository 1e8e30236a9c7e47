-- params: $1 bigint after_id (0 = from the start), $2 text, $3 text prefix (both
--         as in select_page_by_email.sql), $4 bigint role_id, $5 boolean is_active
--         (null = any), $6 int lim, $7 int rare (as in select_page_by_email.sql)
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
-- Both filters. A rare text: its few matches (user_email_suffixes_pkey), each
-- checked for the role. A common text of four characters or more: two ranges in
-- user id order merged, the emails holding its first four characters
-- (user_email_suffixes_head_idx) and the role's members
-- (user_roles_role_id_user_id_idx), each pair rechecked against the whole text;
-- the merge stops when the page is full or either range ends, so a small role
-- or a rare window ends it early, and a sparse intersection costs ~page / (its
-- share of the window's holders) entries of each, never a walk of every user. A
-- shorter common text: the role's members in id order, each looked up by id and
-- tested, ~page / (the text's share among them) lookups. Deactivated users only
-- (isActive: false): a common text walks them (users_is_active_idx), each
-- checked for the role.
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
    (select u.*
     from (select distinct h.user_id  -- in id order: one range of the index
           from user_email_suffixes h
           where left(h.suffix, 4) = left(lower($2::text), 4) collate "C"
             and h.user_id > $1) c
     join user_roles ur  -- merged with the role's members, also in id order
       on ur.user_id = c.user_id and ur.role_id = $4 and ur.user_id > $1
     cross join lateral (
         select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
         from users u
         where u.id = c.user_id
           and strpos(lower(u.email), lower($2::text)) > 0
           and ($5::boolean is null or u.is_active = $5::boolean)
         limit 1) u
     where not (select yes from rare) and length(lower($2::text)) >= 4
       and coalesce($5::boolean, true)
     order by c.user_id
     limit $6)
    union all
    (select u.*
     from user_roles ur
     cross join lateral (  -- each member of the role looked up, in id order
         select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
         from users u
         where u.id = ur.user_id
           and strpos(lower(u.email), lower($2::text)) > 0
           and ($5::boolean is null or u.is_active = $5::boolean)
         limit 1) u
     where not (select yes from rare) and length(lower($2::text)) < 4
       and coalesce($5::boolean, true)
       and ur.role_id = $4
       and ur.user_id > $1
     order by ur.user_id
     limit $6)
    union all
    (select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
     from users u
     where not (select yes from rare) and not coalesce($5::boolean, true)
       -- the keyset as users_is_active_idx's key (select_page_by_active.sql)
       and (u.is_active, u.id) > (false, $1) and u.is_active <= false
       and strpos(lower(u.email), lower($2::text)) > 0
       and exists (select 1 from user_roles ur where ur.role_id = $4 and ur.user_id = u.id)
     order by u.is_active, u.id
     limit $6)
) page
order by page.id
limit $6
