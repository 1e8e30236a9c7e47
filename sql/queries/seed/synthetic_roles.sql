-- params: $1 int role_count
-- returns: id bigint (the synthetic roles team-NN created now). Found by their
-- stable key afterwards; a name someone else took is left alone (no role then).
insert into roles (builtin_key, name, description)
select format('team-%s', lpad(g::text, 2, '0')), format('team-%s', lpad(g::text, 2, '0')), 'synthetic (benchmark)'
from generate_series(0, $1 - 1) g
where not exists (
    select 1 from roles r
    where r.builtin_key = format('team-%s', lpad(g::text, 2, '0')) or r.name = format('team-%s', lpad(g::text, 2, '0'))
)
returning id
