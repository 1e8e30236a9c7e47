-- params: $1 bigint user_id, $2 bigint role_id, $3 bigint granted_by
-- returns: user_id (nothing when already assigned)
insert into user_roles (user_id, role_id, granted_by) values ($1, $2, $3)
on conflict do nothing
returning user_id
