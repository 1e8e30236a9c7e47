-- params: $1 text builtin_key, $2 text name, $3 text description
-- returns: id bigint
insert into roles (builtin_key, name, description) values ($1, $2, $3)
returning id
