-- params: $1 bigint role_id, $2 bigint[] permission_ids
-- returns: nothing; the role's permissions become exactly $2
with gone as (
    delete from role_permissions
    where role_id = $1 and permission_id <> all($2::bigint[])
)
insert into role_permissions (role_id, permission_id)
select $1, unnest($2::bigint[])
on conflict do nothing
