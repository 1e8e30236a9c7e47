-- params: none
-- returns: builtin_key text, id bigint (the built-in roles, found by their stable key)
select builtin_key, id from roles where builtin_key is not null
