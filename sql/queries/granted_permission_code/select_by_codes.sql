-- params: $1 text[] codes
-- returns: code text (those of the codes that were ever granted to a role)
select code from granted_permission_code where code = any($1::text[])
