-- params: $1 bigint user_id, $2 text role_name
-- returns: nothing
insert into user_roles (user_id, role_id)
select $1, id from roles where name = $2
on conflict do nothing
