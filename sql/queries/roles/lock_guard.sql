-- params: none
-- returns: nothing; serialises the mutations that can take privileges away, so the
-- "last holder of roles:write" check cannot be raced by two concurrent removals
select pg_advisory_xact_lock(7365)
