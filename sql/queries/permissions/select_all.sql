-- returns: id bigint, code text, description text
select id, code, description from permissions order by code
