-- params: $1 int role_count, $2 int permission_count
-- returns: nothing. Roles team-NN, each granted 5..12 of the synthetic
-- permissions res_NN:read|write, chosen by arithmetic (deterministic).
with perms as (
    insert into permissions (code, description)
    select format('res_%s:%s', lpad((g / 2)::text, 2, '0'), case when g % 2 = 0 then 'read' else 'write' end),
           'synthetic (benchmark)'
    from generate_series(0, $2 - 1) g
    where not exists (select 1 from permissions p
                      where p.code = format('res_%s:%s', lpad((g / 2)::text, 2, '0'), case when g % 2 = 0 then 'read' else 'write' end))
),
roles_ins as (
    insert into roles (name, description)
    select format('team-%s', lpad(g::text, 2, '0')), 'synthetic (benchmark)'
    from generate_series(0, $1 - 1) g
    where not exists (select 1 from roles r where r.name = format('team-%s', lpad(g::text, 2, '0')))
)
select 1
