-- params: $1 bigint[] ids
-- returns: id, name, description
select id, name, description from roles where id = any($1::bigint[])
