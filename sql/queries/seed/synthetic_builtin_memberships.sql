-- params: $1 bigint viewer_role_id, $2 bigint editor_role_id, $3 bigint[] user_ids
-- returns: nothing. Of the synthetic users created now ($3), every 10th is a
-- viewer and every 50th an editor, so the demo roles have holders to list.
insert into user_roles (user_id, role_id)
select u.id, case when num.n % 50 = 0 then $2::bigint else $1::bigint end
from users u
cross join lateral (
    select substring(u.email from '^user([0-9]+)@example\.com$')::int as n
) num
where u.id = any($3::bigint[]) and u.email ~ '^user[0-9]+@example\.com$' and num.n % 10 = 0
on conflict do nothing
