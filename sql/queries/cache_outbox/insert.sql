-- params: $1 bigint[] user_ids (null = every user)
-- returns: id bigint
insert into cache_outbox (user_ids) values ($1) returning id
