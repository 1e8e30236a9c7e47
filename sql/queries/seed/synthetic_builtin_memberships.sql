-- params: $1 bigint viewer_role_id, $2 bigint editor_role_id
-- returns: nothing. Every 10th synthetic user is a viewer, every 50th an editor,
-- so the demo roles have holders to list and filter by.
insert into user_roles (user_id, role_id)
select u.id, case when num.n % 50 = 0 then $2::bigint else $1::bigint end
from users u
cross join lateral (
    select substring(u.email from '^user([0-9]+)@example\.com$')::int as n
) num
where u.email ~ '^user[0-9]+@example\.com$' and num.n % 10 = 0
on conflict do nothing
