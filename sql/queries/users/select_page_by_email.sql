-- params: $1 bigint after_id (0 = from the start), $2 text (the text itself),
--         $3 text prefix (the text with \ % _ escaped || '%'), $4 boolean
--         is_active (null = any), $5 int lim, $6 int rare (a text with at most this
--         many suffixes is rare)
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
-- Bounded for every text (migrations 0017, 0018 say why): first at most $6 + 1
-- of the suffixes that start with the text, one range of
-- user_email_suffixes_pkey. A rare text's matches are among them: its page is
-- read from them, by id, in id order. A common text of four characters or more:
-- the emails holding its first four, one range of user_email_suffixes_head_idx
-- in id order, ~page / (the text's share of them) entries. A shorter common text
-- (one to three characters, held by many): a walk of users_pkey, ~page / (its
-- share of users) rows. Deactivated users only (isActive: false, usually few):
-- a common text walks them (users_is_active_idx), whatever its length, rather
-- than every holder of the text. One branch runs: the others' gates are
-- one-time filters.
-- Planned for each call, without bitmap scans, hashes or sequential scans
-- (plan_text_filter.sql), so that each range is an index range read in order.
-- The text's test, `strpos(lower(email), lower(text)) > 0`, is what
-- `email ILIKE '%text%'` means in a UTF-8 database, without lowering the
-- pattern again for every row.
with found as materialized (
    select s.user_id
    from user_email_suffixes s
    where s.suffix like (lower($3::text) collate "C")
    order by s.suffix, s.user_id  -- the key's order: a range of it, stopped early
    limit $6::int + 1
), rare as materialized (
    select count(*) <= $6::int as yes from found
)
select * from (
    (select u.*
     from (select distinct f.user_id from found f where f.user_id > $1) c
     cross join lateral (  -- one lookup by id per candidate, in id order, until the page is full
         select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
         from users u
         where u.id = c.user_id
           and strpos(lower(u.email), lower($2::text)) > 0
           and ($4::boolean is null or u.is_active = $4::boolean)
         limit 1) u
     where (select yes from rare)
     order by c.user_id
     limit $5)
    union all
    (select u.*
     from (select distinct h.user_id  -- in id order: one range of the index
           from user_email_suffixes h
           where left(h.suffix, 4) = left(lower($2::text), 4) collate "C"
             and h.user_id > $1) c
     cross join lateral (
         select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
         from users u
         where u.id = c.user_id
           and strpos(lower(u.email), lower($2::text)) > 0
           and ($4::boolean is null or u.is_active = $4::boolean)
         limit 1) u
     where not (select yes from rare) and length(lower($2::text)) >= 4
       and coalesce($4::boolean, true)
     order by c.user_id
     limit $5)
    union all
    (select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
     from users u
     where not (select yes from rare) and length(lower($2::text)) < 4
       and coalesce($4::boolean, true)
       and strpos(lower(u.email), lower($2::text)) > 0
       and ($4::boolean is null or u.is_active = $4::boolean)
       and u.id > $1
     order by u.id
     limit $5)
    union all
    (select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
     from users u
     where not (select yes from rare) and not coalesce($4::boolean, true)
       -- the keyset as users_is_active_idx's key (select_page_by_active.sql)
       and (u.is_active, u.id) > (false, $1) and u.is_active <= false
       and strpos(lower(u.email), lower($2::text)) > 0
     order by u.is_active, u.id
     limit $5)
) page
order by page.id
limit $5
