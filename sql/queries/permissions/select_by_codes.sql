-- params: $1 text[] codes
-- returns: id bigint, code text, description text
select id, code, description from permissions where code = any($1::text[])
