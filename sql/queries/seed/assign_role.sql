-- params: $1 bigint user_id, $2 bigint role_id
-- returns: nothing
insert into user_roles (user_id, role_id) values ($1, $2)
on conflict do nothing
