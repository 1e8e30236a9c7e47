-- params: $1 text name, $2 text description
-- returns: id, name, description (nothing when the name is taken)
insert into roles (name, description) values ($1, $2)
on conflict (name) do nothing
returning id, name, description
