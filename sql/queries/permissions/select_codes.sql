-- params: none
-- returns: code text (every permission code that exists)
select code from permissions
