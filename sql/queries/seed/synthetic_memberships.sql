-- params: $1 int role_count, $2 bigint[] user_ids
-- returns: nothing. Each synthetic user created now ($2) gets 1..3 team roles
-- (deterministic in its number), found by their stable key
insert into user_roles (user_id, role_id)
select u.id, r.id
from users u
cross join lateral (
    select substring(u.email from '^user([0-9]+)@example\.com$')::int as n
) num
cross join lateral generate_series(0, num.n % 3) k
join roles r on r.builtin_key = format('team-%s', lpad(((num.n * 13 + k * 7) % $1)::text, 2, '0'))
where u.id = any($2::bigint[]) and u.email ~ '^user[0-9]+@example\.com$'
on conflict do nothing
