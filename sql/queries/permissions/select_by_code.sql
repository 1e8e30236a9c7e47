-- params: $1 text code
-- returns: id bigint, code text, description text
select id, code, description from permissions where code = $1
