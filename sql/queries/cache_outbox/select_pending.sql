-- params: $1 int lim
-- returns: id bigint, user_ids bigint[] (oldest first)
select id, user_ids from cache_outbox order by id limit $1
