-- params: $1 bigint role_id
-- returns: user_id bigint
-- Every holder of a role, read inside the mutation's transaction (after the role
-- row is locked) so that the invalidation covers exactly the users it changed.
select user_id from user_roles where role_id = $1
