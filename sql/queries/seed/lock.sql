-- params: none
-- returns: nothing; two instances seeding at once take turns
select pg_advisory_xact_lock(7366)
