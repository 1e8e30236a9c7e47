-- params: $1 bigint[] ids
-- returns: id bigint, code text, description text
select id, code, description from permissions where id = any($1::bigint[])
