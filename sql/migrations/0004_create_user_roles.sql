create table user_roles (
    user_id    bigint not null constraint user_roles_user_id_fkey references users (id) on delete cascade,
    role_id    bigint not null constraint user_roles_role_id_fkey references roles (id) on delete cascade,
    granted_at timestamptz not null default now(),
    granted_by bigint constraint user_roles_granted_by_fkey references users (id) on delete set null,
    constraint user_roles_pkey primary key (user_id, role_id)
);
-- the primary key serves user -> roles; this serves role -> members (keyset by user id)
create index user_roles_role_id_user_id_idx on user_roles (role_id, user_id);
