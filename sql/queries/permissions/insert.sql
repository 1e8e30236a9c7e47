-- params: $1 text code, $2 text description
-- returns: the new row, or nothing when the code exists already
insert into permissions (code, description) values ($1, $2)
on conflict (code) do nothing
returning id, code, description
