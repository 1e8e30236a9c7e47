-- params: $1 int permission_count
-- returns: code text (the synthetic permissions res_NN:read|write created now)
insert into permissions (code, description)
select format('res_%s:%s', lpad((g / 2)::text, 2, '0'), case when g % 2 = 0 then 'read' else 'write' end),
       'synthetic (benchmark)'
from generate_series(0, $1 - 1) g
where not exists (
    select 1 from permissions p
    where p.code = format('res_%s:%s', lpad((g / 2)::text, 2, '0'), case when g % 2 = 0 then 'read' else 'write' end)
)
returning code
