-- params: $1 bigint[] role_ids
-- returns: user_id bigint, once per user holding any of the roles now
select distinct user_id from user_roles where role_id = any($1::bigint[])
