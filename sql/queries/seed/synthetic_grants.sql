-- params: $1 int role_count, $2 int permission_count
-- returns: nothing
insert into role_permissions (role_id, permission_id)
select r.id, p.id
from generate_series(0, $1 - 1) rg
join roles r on r.name = format('team-%s', lpad(rg::text, 2, '0'))
cross join lateral generate_series(0, 4 + rg % 8) k
join permissions p on p.code = format('res_%s:%s',
        lpad((((rg * 7 + k * 3) % $2) / 2)::text, 2, '0'),
        case when ((rg * 7 + k * 3) % $2) % 2 = 0 then 'read' else 'write' end)
on conflict do nothing
