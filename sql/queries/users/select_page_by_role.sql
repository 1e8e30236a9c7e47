-- params: $1 bigint after_id (0 = from the start), $2 text role_name, $3 boolean is_active (null = any), $4 int lim
-- returns: id, email, display_name, avatar_url, is_active, created_at, updated_at
-- The role's members in user id order over user_roles_role_id_user_id_idx (the
-- keyset written as its key, as in select_members_by_role_ids.sql), each member's
-- row read by users_pkey (`offset 0` keeps that a lookup per member: joined
-- instead, a merge join walks users_pkey from the first user): O(page), or
-- O(page / share of the members matching is_active).
select p.id, p.email, p.display_name, p.avatar_url, p.is_active, p.created_at, p.updated_at
from roles r
cross join lateral (
    select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
    from user_roles ur
    cross join lateral (
        select u.id, u.email, u.display_name, u.avatar_url, u.is_active, u.created_at, u.updated_at
        from users u
        where u.id = ur.user_id and ($3::boolean is null or u.is_active = $3::boolean)
        offset 0
    ) u
    where (ur.role_id, ur.user_id) > (r.id, $1) and ur.role_id <= r.id
    order by ur.role_id, ur.user_id
    limit $4
) p
where r.name = $2::text
order by p.id
