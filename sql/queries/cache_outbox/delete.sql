-- params: $1 bigint[] ids
-- returns: nothing
delete from cache_outbox where id = any($1::bigint[])
