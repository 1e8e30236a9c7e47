-- returns: count bigint
-- totalCount without a filter counts every user: O(users), as any exact count.
select count(*) from users
