-- params: $1 text[] codes, $2 text[] descriptions
-- returns: code text (the codes created now; existing ones are left as an admin made them)
-- `where not exists` rather than `on conflict`: a skipped row uses up no id.
insert into permissions (code, description)
select t.code, t.description
from unnest($1::text[], $2::text[]) as t(code, description)
where not exists (select 1 from permissions p where p.code = t.code)
returning code
