-- params: $1 int role_count, $2 int permission_count, $3 bigint[] role_ids
-- returns: nothing. Each team role created now ($3) gets 5..12 of the synthetic
-- permissions, chosen by arithmetic (deterministic); roles made earlier keep
-- whatever an admin made of them.
insert into role_permissions (role_id, permission_id)
select r.id, p.id
from generate_series(0, $1 - 1) rg
join roles r on r.builtin_key = format('team-%s', lpad(rg::text, 2, '0')) and r.id = any($3::bigint[])
cross join lateral generate_series(0, 4 + rg % 8) k
join permissions p on p.code = format('res_%s:%s',
        lpad((((rg * 7 + k * 3) % $2) / 2)::text, 2, '0'),
        case when ((rg * 7 + k * 3) % $2) % 2 = 0 then 'read' else 'write' end)
on conflict do nothing
