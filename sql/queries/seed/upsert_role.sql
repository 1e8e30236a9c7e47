-- params: $1 text name, $2 text description
-- returns: id bigint
insert into roles (name, description) values ($1, $2)
on conflict (name) do update set description = excluded.description
returning id
