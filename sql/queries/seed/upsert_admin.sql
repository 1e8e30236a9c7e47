-- params: $1 text email, $2 text password_hash
-- returns: id bigint, created boolean
with existing as (select id from users where lower(email) = lower($1)),
ins as (
    insert into users (email, display_name, password_hash)
    select $1, 'Administrator', $2 where not exists (select 1 from existing)
    returning id
)
select id, true as created from ins
union all
select id, false from existing
