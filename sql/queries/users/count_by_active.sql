-- params: $1 boolean is_active
-- returns: count bigint (O(matches): an index-only scan of users_is_active_idx)
select count(*) from users where is_active = $1
