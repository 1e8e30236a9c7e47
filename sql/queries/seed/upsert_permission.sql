-- params: $1 text code, $2 text description
-- returns: id bigint
insert into permissions (code, description) values ($1, $2)
on conflict (code) do update set description = excluded.description
returning id
